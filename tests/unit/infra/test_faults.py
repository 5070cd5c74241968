"""Sorting failures: what is retried without limit, and what may be the record's own fault."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ValidationError

from goldenhour.infra.faults import is_transient


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "not a number"})
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "connection refused"),
        ConnectionResetError(104, "reset by peer"),
        TimeoutError(),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),  # 57P01
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),  # 57P03
        asyncpg.exceptions.QueryCanceledError("statement timeout"),  # 57014
        asyncpg.exceptions.SerializationError("could not serialize access"),  # 40001
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),  # 40P01
        asyncpg.exceptions.IdleInTransactionSessionTimeoutError("idle timeout"),  # 25P03
        asyncpg.exceptions.LockNotAvailableError("lock not available"),  # 55P03
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),  # 53300
        kafka_errors.NodeNotReadyError(),
        kafka_errors.KafkaTimeoutError(),
        kafka_errors.KafkaConnectionError(),
        kafka_errors.RequestTimedOutError(),
        kafka_errors.NotLeaderForPartitionError(),
        kafka_errors.NotEnoughReplicasError(),  # retriable by the protocol's own flag
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_server_that_is_away_or_busy_is_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad value"),
        KeyError("policy"),
        RuntimeError("no free acknowledgement code"),
        _validation_error(),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),  # 23505
        asyncpg.exceptions.RaiseError("refused by a trigger"),  # P0001
        asyncpg.exceptions.UndefinedColumnError("no such column"),  # 42703
        asyncpg.exceptions.InvalidTextRepresentationError("bad uuid"),  # 22P02
        kafka_errors.UnsupportedVersionError(),
        kafka_errors.RecordTooLargeError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_failure_that_may_repeat_on_the_same_input_is_not(exc):
    assert not is_transient(exc)


def test_a_wrapped_failure_is_sorted_by_its_cause():
    try:
        try:
            raise ConnectionResetError(104, "reset by peer")
        except OSError as inner:
            raise RuntimeError("claim due steps") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_the_context_counts_too():
    try:
        try:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        except asyncpg.PostgresError:
            raise KeyError("while handling")  # noqa: B904 - the implicit context is the point
    except KeyError as outer:
        assert is_transient(outer)


def test_a_deterministic_cause_keeps_a_wrapper_deterministic():
    try:
        try:
            raise asyncpg.exceptions.RaiseError("refused by a trigger")
        except asyncpg.PostgresError as inner:
            raise RuntimeError("apply event") from inner
    except RuntimeError as outer:
        assert not is_transient(outer)


def test_a_cycle_of_causes_ends():
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert not is_transient(a)
