"""The idempotent producer is used exactly when every broker offers it and one serves it."""

from __future__ import annotations

import pytest
from aiokafka import errors as kafka_errors

from goldenhour.infra.producers import (
    INIT_PRODUCER_ID,
    idempotence_decision,
    producer_id_decision,
)

PRODUCE = 0
KAFKA_3 = {PRODUCE: (0, 9), INIT_PRODUCER_ID: (0, 4)}
FROM_V3 = {PRODUCE: (0, 9), INIT_PRODUCER_ID: (3, 5)}
WITHOUT = {PRODUCE: (0, 9)}


def test_a_cluster_of_brokers_that_all_offer_it_gets_the_idempotent_producer():
    enabled, reason = idempotence_decision({1: KAFKA_3, 2: KAFKA_3, 3: KAFKA_3})
    assert enabled
    assert "3" in reason


@pytest.mark.parametrize(
    ("brokers", "named"),
    [
        ({1: FROM_V3}, "v3-v5"),
        ({1: WITHOUT}, "does not offer"),
        ({1: KAFKA_3, 2: WITHOUT}, "broker 2"),
        ({}, "no broker"),
    ],
)
def test_any_broker_without_a_usable_init_producer_id_turns_it_off(brokers, named):
    enabled, reason = idempotence_decision(brokers)
    assert not enabled
    assert named in reason


def test_a_broker_that_hands_out_a_producer_id_serves_it():
    enabled, _ = idempotence_decision({1: KAFKA_3})
    assert enabled
    assert producer_id_decision(1, 0, 4242) == (True, "broker 1 hands out producer ids")


@pytest.mark.parametrize(
    ("error_code", "producer_id", "named"),
    [
        (-1, -1, "UnknownError"),  # what the embedded broker answers to v0
        (31, -1, "ClusterAuthorizationFailedError"),  # no IdempotentWrite permission
        (0, -1, "NoError"),
    ],
)
def test_a_broker_that_lists_init_producer_id_but_gives_no_id_turns_it_off(
    error_code, producer_id, named
):
    enabled, reason = producer_id_decision(1, error_code, producer_id)
    assert not enabled
    assert named in reason


@pytest.mark.parametrize("error_code", [14, 15])  # coordinator loading, not available
def test_a_broker_not_ready_yet_is_asked_again_never_taken_for_one_without_it(error_code):
    with pytest.raises(kafka_errors.KafkaError) as raised:
        producer_id_decision(1, error_code, -1)
    assert raised.value.retriable
