"""Who may submit what for which child, and who sees its alerts."""

from __future__ import annotations

import pytest

from contracts.config import GoldenHourConfig
from infra.devsystem import directory
from services.access import Refusal, agencies, check_submit, may_see

CONFIG = GoldenHourConfig.model_validate(directory()[0])
CHILD = agencies(CONFIG, "LBH", "OAK", "P-1")


def org(code: str):
    found = CONFIG.org(code)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "event_type", ["absence.reported", "checkin.recorded", "child.located", "risk.signal"]
)
def test_care_home_reports_on_its_own_child(event_type):
    check_submit(org("OAK"), event_type, CHILD, "P-1")


@pytest.mark.parametrize(
    "code, event_type, placement, why",
    [
        ("ELM", "absence.reported", None, "not placed with your care home"),
        ("OAK", "placement.started", None, "may not submit placement.started"),
        ("OAK", "checkin.recorded", "P-2", "not this child's current placement"),
        ("LBI", "absence.reported", None, "does not act for this child"),
        ("MPS", "placement.started", None, "only the child's local authority"),
    ],
)
def test_refusals_say_why(code, event_type, placement, why):
    with pytest.raises(Refusal, match=why):
        check_submit(org(code), event_type, CHILD, placement)


def test_unknown_child_needs_identification_first():
    check_submit(org("MPS"), "child.identified", None)
    with pytest.raises(Refusal, match="child.identified first"):
        check_submit(org("LBH"), "absence.reported", None)
    with pytest.raises(Refusal, match="may not record an identification"):
        check_submit(org("OAK"), "child.identified", None)


def test_police_of_the_authority_and_national_units_see_the_child():
    assert may_see(org("LBH"), CHILD) and may_see(org("MPS"), CHILD)
    assert may_see(org("OAK"), CHILD) and may_see(org("UKMPU"), CHILD)
    assert not may_see(org("LBI"), CHILD) and not may_see(org("ELM"), CHILD)


def test_immigration_enforcement_sees_and_submits_nothing():
    config = directory()[0]
    config["organisations"].append({"code": "HOIE", "kind": "immigration_enforcement"})
    hoie = GoldenHourConfig.model_validate(config).org("HOIE")
    assert hoie is not None
    assert not may_see(hoie, CHILD)
    with pytest.raises(Refusal):
        check_submit(hoie, "child.identified", None)
