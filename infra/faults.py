"""Sorting failures: a transient one (a server unreachable, a timeout, a conflict that the next
try resolves) is retried without limit; anything else may be deterministic and, once it has
repeated, is set aside where an operator sees it."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import errors as kafka_errors

# SQLSTATE classes that say the server, not the statement, is at fault: connection exceptions,
# transaction rollback (serialization, deadlock), insufficient resources, operator
# intervention (shutdown, statement or idle timeout, cancel), system errors.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_SQLSTATES = frozenset({"55P03", "25P03", "55006"})  # lock not available, idle timeout

_TRANSIENT_KAFKA = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NotLeaderForPartitionError,
    kafka_errors.LeaderNotAvailableError,
)


def _transient_one(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError)):
        return True
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return True  # the connection closed or is unusable: the statement never ran to its end
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES
    if isinstance(exc, _TRANSIENT_KAFKA):
        return True
    if isinstance(exc, kafka_errors.KafkaError):
        return bool(getattr(exc, "retriable", False))
    return False


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or anything it was raised from, says "try again later"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _transient_one(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
