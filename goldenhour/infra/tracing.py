"""One correlation id per request, followed across the parts: the API takes the caller's
`X-Request-Id` (or makes one), and it travels with what the request caused — the outbox row,
the Kafka record's headers, the alert it opened, each message row, the provider call — bound in
every log line on the way, so `correlation_id` finds one report in every part's logs.

structlog's context variables are the carrier: what is bound there is both in each log line
and what `current()` answers, so a writer of rows never needs the id passed down to it. An
alert remembers the id of the report that opened it, and its later steps run under it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping

import structlog

FIELD = "correlation_id"
HTTP_HEADER = "x-request-id"
KAFKA_HEADER = "correlation_id"
# What a caller may send as its own id: enough for a UUID or a proxy's request id, nothing
# that could break a log line or a header.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def new() -> str:
    return uuid.uuid4().hex


def accept(given: str | None) -> str:
    """The caller's id when it is a plausible one, a new one otherwise."""
    return given if given is not None and _ACCEPTED.fullmatch(given) else new()


def current() -> str | None:
    """The id bound in this context, if any."""
    value = structlog.contextvars.get_contextvars().get(FIELD)
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def bound(correlation_id: str | None) -> Iterator[None]:
    """Run the block under `correlation_id` (unchanged when it is None)."""
    if correlation_id is None:
        yield
        return
    with structlog.contextvars.bound_contextvars(**{FIELD: correlation_id}):
        yield


def kafka_headers(correlation_id: str | None) -> list[tuple[str, bytes]]:
    """The headers a record carries its id in (none without one)."""
    return [(KAFKA_HEADER, correlation_id.encode())] if correlation_id else []


def from_kafka_headers(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None,
) -> str | None:
    """The id a record carries, when it carries a plausible one."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == KAFKA_HEADER and value:
            text = value.decode("utf-8", "replace")
            return text if _ACCEPTED.fullmatch(text) else None
    return None
