"""Twilio callbacks acted on once: a replayed callback (the same URL and signed form) is
answered but has no second effect."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg

# Twilio retries a callback for minutes, not days; a day covers any replay worth stopping and
# keeps the table small.
KEEP = timedelta(days=1)

_CLAIM = (
    "INSERT INTO twilio_callbacks (digest) VALUES ($1) ON CONFLICT (digest) DO NOTHING"
    " RETURNING true"
)
_RELEASE = "DELETE FROM twilio_callbacks WHERE digest = $1"
_PRUNE = "DELETE FROM twilio_callbacks WHERE received_at < now() - $1::interval"


def callback_digest(url: str, form: Mapping[str, str]) -> bytes:
    """One digest per distinct signed request: what the signature covers, the URL and form."""
    canonical = json.dumps([url, sorted(form.items())], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


@asynccontextmanager
async def first_delivery(
    pool: asyncpg.Pool, url: str, form: Mapping[str, str]
) -> AsyncIterator[bool]:
    """True the first time this callback arrives, False for a replay. Claimed before it is
    acted on, so two concurrent copies cannot both act; handed back when acting on it fails,
    so Twilio's retry of a callback we could not apply is applied."""
    digest = callback_digest(url, form)
    first = bool(await pool.fetchval(_CLAIM, digest))
    if first:
        await pool.execute(_PRUNE, KEEP)
    try:
        yield first
    except Exception:
        if first:
            await pool.execute(_RELEASE, digest)
        raise
