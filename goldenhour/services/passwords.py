"""Console passwords: argon2id hashes in Postgres, set by `goldenhour users set-password`."""

from __future__ import annotations

import asyncio
import getpass
import sys
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from goldenhour.infra.settings import Settings
from goldenhour.services.console import db

MIN_LENGTH = 12
_hasher = PasswordHasher()
# Argon2 spends about 0.3 s of CPU by design: on the event loop that would stall intake and the
# health checks. Two threads of their own, so a burst of sign-ins queues here and never takes
# the threads the rest of the process needs.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")

# Verified against when the user has no password, so a wrong user name takes as long as a wrong
# password and the answer time does not tell which users exist.
_DUMMY_HASH = _hasher.hash("no such user: this hash only spends the same time")


class PasswordRefused(ValueError):
    """The new password is not acceptable; the message says why."""


def check_new(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordRefused(f"a password needs at least {MIN_LENGTH} characters")
    if password != password.strip():
        raise PasswordRefused("a password may not start or end with spaces")


def hash_password(password: str) -> str:
    check_new(password)
    return _hasher.hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; False for no hash, a wrong password or a damaged hash."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_off_loop(stored_hash: str | None, password: str) -> bool:
    """`verify`, in the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, verify, stored_hash, password)


async def hash_off_loop(password: str) -> str:
    """`hash_password`, in the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def set_password(conn: asyncpg.Connection, user_id: str, password: str) -> None:
    """Store a new password; every session of the user ends with it."""
    new_hash = await hash_off_loop(password)
    await conn.execute(db.SET_PASSWORD, user_id, new_hash)
    # A new password ends every session signed in with the old one, and the lock-out the
    # wrong ones earned: an administrator's reset lets the user straight back in.
    await conn.execute(db.END_USER_SESSIONS, user_id)
    user = f"user:{user_id.lower()}"
    await conn.execute(db.FORGET_USER_LOGIN_FAILURES, user)


async def stored_hash(pool: asyncpg.Pool, user_id: str) -> str | None:
    return await pool.fetchval(db.PASSWORD_HASH, user_id)


async def set_password_at(dsn: str, user_id: str, password: str) -> None:
    """Migrate if needed, then store the password: for the admin command and the demo."""
    from goldenhour.infra.db import migrate

    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await set_password(conn, user_id, password)
    finally:
        await conn.close()


def set_password_main(settings: Settings, user_id: str, from_stdin: bool) -> int:
    """The admin command: check the user exists, read the password twice, store its hash."""
    if settings.config.user(user_id) is None:
        raise SystemExit(f"goldenhour: no user {user_id!r} in the directory")
    _, dsn = settings.require_servers()
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"New console password for {user_id}: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("goldenhour: the two passwords differ; nothing changed")
    try:
        check_new(password)
    except PasswordRefused as exc:
        raise SystemExit(f"goldenhour: {exc}; nothing changed") from None

    asyncio.run(set_password_at(dsn, user_id, password))
    print(f"password set for {user_id}; their other console sessions are signed out")
    return 0
