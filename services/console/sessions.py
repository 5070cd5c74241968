"""Console sign-in: sessions in Postgres behind an HttpOnly cookie, CSRF tokens, a login limit.

The cookie holds a random token; the database keeps only its SHA-256, so a copy of the table
signs nobody in. Every form carries the session's CSRF token. Failed sign-ins are counted per
user name and per address in the database, so every API replica enforces the same limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from fastapi import Request

from contracts.config import GoldenHourConfig, OrgKind, hash_api_key
from services import passwords
from services.auth import Caller

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
    return caller if passwords.verify(stored, password) and caller else None


# An address may fail this many times more than one user name: a council office or a police
# station signs in from behind one address.
ADDRESS_FACTOR = 10


def failure_keys(user_id: str, address: str) -> list[str]:
    return [f"user:{user_id.lower()}", f"addr:{address}"]


async def too_many_failures(pool: asyncpg.Pool, keys: list[str], limit: int, now: datetime) -> bool:
    """True when the user name, or the address, failed too often in the last 15 minutes."""
    rows = await pool.fetch(
        "SELECT key, count(*) AS n FROM login_failures WHERE key = ANY($1) AND at > $2"
        " GROUP BY key",
        keys,
        now - FAILURE_WINDOW,
    )
    return any(
        r["n"] >= (limit * ADDRESS_FACTOR if r["key"].startswith("addr:") else limit) for r in rows
    )


async def record_failure(pool: asyncpg.Pool, keys: list[str], now: datetime) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO login_failures (key, at) VALUES ($1, $2)", [(k, now) for k in keys]
        )
        await conn.execute("DELETE FROM login_failures WHERE at < $1", now - timedelta(days=1))


async def start(pool: asyncpg.Pool, caller: Caller, ttl: timedelta, now: datetime) -> str:
    """A new session for `caller`; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO console_sessions (token_sha256, user_id, org_code, csrf_token, created_at,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        _digest(token),
        caller.user.id,
        caller.org.code,
        secrets.token_urlsafe(32),
        now,
        now + ttl,
    )
    await pool.execute("DELETE FROM console_sessions WHERE expires_at < $1", now)
    return token


async def end(pool: asyncpg.Pool, token: str) -> None:
    await pool.execute("DELETE FROM console_sessions WHERE token_sha256 = $1", _digest(token))


async def current(request: Request, now: datetime) -> ConsoleUser | None:
    """The signed-in user of a request, or None (no cookie, unknown, expired, or removed user)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    row = await request.app.state.pool.fetchrow(
        "SELECT user_id, csrf_token, expires_at FROM console_sessions"
        " WHERE token_sha256 = $1 AND expires_at > $2",
        _digest(token),
        now,
    )
    caller = _caller(request.app.state.config, row["user_id"]) if row else None
    if row is None or caller is None:
        return None
    return ConsoleUser(caller, row["csrf_token"], row["expires_at"])


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
