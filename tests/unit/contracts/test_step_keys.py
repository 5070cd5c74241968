"""A policy step's identity: stable across reorders and inserts, never a key the clock owns."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from goldenhour.contracts.policy import Delivery, Policy, Step

MPU = {"after": "15m", "notify": ["national.missing_persons_unit"], "channels": ["sms"]}
POLICE = {"after": "15m", "notify": ["police.control_room"], "channels": ["sms", "voice"]}
FIRST = {"after": "0m", "notify": ["care_home.manager"], "channels": ["sms", "email"]}


def test_a_step_keeps_its_key_wherever_it_stands_in_the_policy() -> None:
    before = Policy(steps=[FIRST, MPU, POLICE])
    after = Policy(steps=[FIRST, POLICE, MPU, {**MPU, "after": "45m"}])
    assert [s.key for s in before.steps] == [
        after.steps[0].key,
        after.steps[2].key,
        after.steps[1].key,
    ]
    assert after.steps[3].key not in {s.key for s in before.steps}


def test_a_key_depends_on_what_the_step_does_not_on_its_channels() -> None:
    assert Step(**MPU).key == Step(**{**MPU, "channels": ["sms", "voice"]}).key
    assert Step(**MPU).key != Step(**{**MPU, "after": "16m"}).key
    assert Step(**MPU).key != Step(**{**MPU, "unless_acknowledged": True}).key
    assert Step(**MPU).key.startswith("15m-")


def test_a_given_id_is_the_key() -> None:
    assert Step(**MPU, id="missing-persons").key == "missing-persons"


@pytest.mark.parametrize("reserved", ["s0", "s12", "r1", "stand_down", "fallback", "share-1"])
def test_an_id_the_clock_keeps_for_itself_is_refused(reserved: str) -> None:
    with pytest.raises(ValidationError, match="keeps for itself"):
        Step(**MPU, id=reserved)


def test_two_steps_that_are_the_same_are_refused_until_one_has_an_id() -> None:
    with pytest.raises(ValidationError, match="same step"):
        Policy(steps=[FIRST, MPU, {**MPU, "channels": ["email"]}])
    Policy(steps=[FIRST, MPU, {**MPU, "channels": ["email"], "id": "mpu-email"}])


def test_delivery_defaults_and_typos() -> None:
    assert Delivery().sms_failover_after.total_seconds() == 120
    assert Delivery().unreachable_after.total_seconds() == 300
    with pytest.raises(ValidationError, match="sms_failover"):
        Delivery(sms_failover="1m")
