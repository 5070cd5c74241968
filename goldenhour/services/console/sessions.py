"""Console sign-in: sessions in Postgres behind an HttpOnly cookie, CSRF tokens, a login limit.

The cookie holds a random token; the database keeps only its SHA-256, so a copy of the table
signs nobody in. Every form carries the session's CSRF token. Failed sign-ins are counted per
user name and per address in the database, so every API replica enforces the same limit; each
attempt is recorded as failed before its password is checked, so a burst cannot outrun the count.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from fastapi import Request

from goldenhour.contracts.config import GoldenHourConfig, OrgKind, hash_api_key
from goldenhour.services import passwords
from goldenhour.services.auth import Caller
from goldenhour.services.console import db

COOKIE = "gh_session"
LOGIN_CSRF_COOKIE = "gh_login_csrf"
FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class ConsoleUser:
    """A signed-in user: who, for which organisation, and the CSRF token of the session."""

    caller: Caller
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _caller(config: GoldenHourConfig, user_id: str) -> Caller | None:
    found = config.user(user_id)
    if found is None or found[0].kind == OrgKind.immigration_enforcement:
        return None
    return Caller(org=found[0], user=found[1])


async def check_credentials(
    pool: asyncpg.Pool, config: GoldenHourConfig, user_id: str, password: str, api_key: str
) -> Caller | None:
    """The user for a user name and password, or for an API key; None otherwise."""
    if api_key:
        found = config.user_for_key_hash(hash_api_key(api_key))
        caller = Caller(org=found[0], user=found[1]) if found else None
        return caller if caller and caller.org.kind != OrgKind.immigration_enforcement else None
    caller = _caller(config, user_id) if user_id else None
    stored = await passwords.stored_hash(pool, caller.user.id) if caller else None
    # Verified even for an unknown user (against a dummy hash): the time tells nobody which.
    matches = await passwords.verify_off_loop(stored, password)
    return caller if matches and caller else None


# An address may fail this many times more than one user name from it: a council office or a
# police station signs in from behind one address. A user name may fail as often from all
# addresses together: a guesser moving between addresses is stopped there.
WIDE_FACTOR = 10


def _counted_address(address: str) -> str:
    """An IPv6 client counts by its /64, which one household or attacker holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def failure_keys(user_id: str | None, address: str) -> list[str]:
    """What a sign-in attempt counts against: the user name from this address, the user name
    from everywhere (a higher limit), and the address. Never the user name alone at the low
    limit: then anyone anywhere could lock a duty manager out with five wrong passwords. An API
    key cannot be guessed: it counts against the address only."""
    where = _counted_address(address)
    user = user_id.lower() if user_id else None
    return ([f"user:{user}@{where}", f"user:{user}"] if user else []) + [f"addr:{where}"]


def _limit_of(key: str, limit: int) -> int:
    return limit if key.startswith("user:") and "@" in key else limit * WIDE_FACTOR


async def begin_attempt(
    pool: asyncpg.Pool, keys: list[str], limit: int, now: datetime
) -> list[int] | None:
    """Record a sign-in attempt as failed before its password is checked, and return its rows;
    None, recording nothing, when a key has failed (or is being tried) too often in 15 minutes.

    Counted and recorded under a lock per key, so however many attempts arrive at once, at most
    `limit` passwords per user name are ever checked in a window."""
    async with pool.acquire() as conn, conn.transaction():
        for key in sorted(keys):  # one order everywhere: two attempts never wait on each other
            await conn.execute(db.LOCK_LOGIN_KEY, key)
        rows = await conn.fetch(db.LOGIN_FAILURES_SINCE, keys, now - FAILURE_WINDOW)
        if any(r["n"] >= _limit_of(r["key"], limit) for r in rows):
            return None
        ids = [await conn.fetchval(db.RECORD_LOGIN_FAILURE, key, now) for key in keys]
        await conn.execute(db.PRUNE_LOGIN_FAILURES, now - timedelta(days=1))
    return ids


async def forget_attempt(pool: asyncpg.Pool, attempt: list[int]) -> None:
    """The attempt succeeded: it is no failure."""
    await pool.execute(db.FORGET_LOGIN_FAILURES, attempt)


async def start(pool: asyncpg.Pool, caller: Caller, ttl: timedelta, now: datetime) -> str:
    """A new session for `caller`; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    await pool.execute(
        db.START_SESSION,
        _digest(token),
        caller.user.id,
        caller.org.code,
        secrets.token_urlsafe(32),
        now,
        now + ttl,
    )
    await pool.execute(db.PRUNE_SESSIONS, now)
    return token


async def end(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute(db.END_SESSION, _digest(token))


async def current(request: Request, now: datetime) -> ConsoleUser | None:
    """The signed-in user of a request, or None (no cookie, unknown, expired, or removed user)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    row = await request.app.state.pool.fetchrow(db.LIVE_SESSION, _digest(token), now)
    caller = _caller(request.app.state.config, row["user_id"]) if row else None
    if row is None or caller is None:
        return None
    return ConsoleUser(caller, row["csrf_token"], row["expires_at"])


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
