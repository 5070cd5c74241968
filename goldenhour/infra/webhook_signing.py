"""Webhook signatures: the sender's `sign` and the receiver's `verify`, in one place so the
local receiver checks deliveries with exactly the code that signs them.

Every delivery carries `X-GoldenHour-Timestamp` (unix seconds) and `X-GoldenHour-Signature`
(`sha256=` + hex HMAC-SHA256 with the subscription's secret over "<timestamp>.<raw body>");
docs/webhooks.md tells a receiver how to check one.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_PREFIX = "sha256="
REPLAY_WINDOW_S = 300
_DIGITS = re.compile(r"[0-9]{1,15}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-GoldenHour-Signature value: "sha256=" + hex HMAC-SHA256 over "<ts>.<body>"."""
    if not secret:
        raise ValueError("a webhook signing secret must not be empty")
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify(
    secret: str | None,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance_s: int = REPLAY_WINDOW_S,
) -> bool:
    """The receiver's check: a well-formed timestamp within tolerance_s of now (either way,
    so neither an old replay nor a far-future one passes) and a signature that matches the
    raw body, compared in constant time. Never raises on bad input; answers False."""
    if not secret or timestamp_header is None or signature_header is None:
        return False
    stamp = timestamp_header.strip()
    if not _DIGITS.fullmatch(stamp):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    given = signature_header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected, given)
