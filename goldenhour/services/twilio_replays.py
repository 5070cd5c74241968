"""Twilio callbacks acted on once: a replayed callback (the same URL and signed form) is
answered but has no second effect."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg

from goldenhour.services import db

# Twilio retries a callback for minutes, not days; a day covers any replay worth stopping and
# keeps the table small.
KEEP = timedelta(days=1)


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
    first = bool(await pool.fetchval(db.CLAIM_CALLBACK, digest))
    if first:
        await pool.execute(db.PRUNE_CALLBACKS, KEEP)
    try:
        yield first
    except Exception:
        if first:
            await pool.execute(db.RELEASE_CALLBACK, digest)
        raise
