"""Sorting failures: a transient one (a server unreachable, a timeout, a conflict that the next
try resolves) is retried without limit; anything else may be deterministic and, once it has
repeated, is set aside where an operator sees it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from aiokafka import errors as kafka_errors

from goldenhour.infra.backoff import delay

log = structlog.get_logger(__name__)
T = TypeVar("T")

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


def timed_out(exc: BaseException) -> bool:
    """True when `exc`, or anything it was raised from, is a statement the server cancelled
    (`statement_timeout`): transient while the server struggles, this input's fault when it
    keeps happening on a server that answers everything else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, asyncpg.QueryCanceledError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
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


async def patiently(what: str, step: Callable[[], Awaitable[T]], cap_s: float = 5.0) -> T:
    """`step()`, retried without limit while it fails transiently (logged once per streak,
    backed off with jitter): a part starting while the database or broker is down waits for it
    instead of exiting, which a supervisor would count as a crash."""
    failures = 0
    while True:
        try:
            result = await step()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            if failures == 1:
                log.warning("start.waiting", what=what, error=repr(exc)[:300])
            await asyncio.sleep(delay(failures + 1, 0.25, cap_s))
            continue
        if failures:
            log.info("start.ready", what=what, failures=failures)
        return result
