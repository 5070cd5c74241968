"""The Postgres pool and the versioned migrations."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
import structlog

from goldenhour.infra import metrics
from goldenhour.infra.backoff import delay
from goldenhour.infra.faults import is_transient

log = structlog.get_logger(__name__)

# Serialises migrators when several replicas start at once.
_MIGRATION_LOCK = 0x601DE4


@dataclass(frozen=True)
class DbLimits:
    """Bounds on every connection, so a hung or partitioned worker frees its locks in seconds.

    `statement_timeout` and `idle_in_transaction_session_timeout` are enforced by the server
    (a claimer paused inside its transaction loses it, and its `FOR UPDATE` locks, after
    `idle_in_transaction_s`); the TCP keepalives let the server notice a peer that vanished;
    `command_timeout_s` is the client's own bound, for a server that is itself paused.
    """

    connect_timeout_s: float = 5.0
    command_timeout_s: float = 15.0
    statement_timeout_s: float = 10.0
    idle_in_transaction_s: float = 5.0
    keepalive_idle_s: int = 5
    keepalive_interval_s: int = 2
    keepalive_count: int = 3

    def server_settings(self, idle_session_s: float | None = None) -> dict[str, str]:
        """The per-session settings; `idle_session_s` also ends a session idle that long (a
        leader's connection, which beats more often, so only a hung leader loses it)."""
        settings = {
            "statement_timeout": str(int(self.statement_timeout_s * 1000)),
            "idle_in_transaction_session_timeout": str(int(self.idle_in_transaction_s * 1000)),
            "tcp_keepalives_idle": str(self.keepalive_idle_s),
            "tcp_keepalives_interval": str(self.keepalive_interval_s),
            "tcp_keepalives_count": str(self.keepalive_count),
        }
        if idle_session_s is not None:
            settings["idle_session_timeout"] = str(int(idle_session_s * 1000))
        return settings

    def connect_kwargs(self, idle_session_s: float | None = None) -> dict[str, Any]:
        return {
            "timeout": self.connect_timeout_s,
            "command_timeout": self.command_timeout_s,
            "server_settings": self.server_settings(idle_session_s),
        }


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _keepalive(conn: asyncpg.Connection, limits: DbLimits) -> None:
    """Client-side keepalives too: the server's bound the server's end, these ours."""
    sock = conn._transport.get_extra_info("socket") if conn._transport else None  # type: ignore[attr-defined]
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", limits.keepalive_idle_s),
        ("TCP_KEEPINTVL", limits.keepalive_interval_s),
        ("TCP_KEEPCNT", limits.keepalive_count),
    ):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


async def create_pool(
    dsn: str,
    min_size: int = 2,
    max_size: int = 10,
    limits: DbLimits | None = None,
    name: str = "main",
) -> asyncpg.Pool:
    """A pool of bounded connections that speak jsonb as Python objects, its use exported
    under `name` (goldenhour_db_pool_*{pool=name})."""
    limits = limits or DbLimits()

    async def init(conn: asyncpg.Connection) -> None:
        _keepalive(conn, limits)
        await _init_connection(conn)

    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init, **limits.connect_kwargs()
    )
    if pool is None:  # only a pool created without awaiting it is None
        raise RuntimeError("asyncpg.create_pool returned no pool")
    metrics.POOLS.track(pool, name)
    return pool


async def connect(
    dsn: str, limits: DbLimits | None = None, idle_session_s: float | None = None
) -> asyncpg.Connection:
    """One dedicated bounded connection (a listener, a leader's lock holder)."""
    limits = limits or DbLimits()
    conn = await asyncpg.connect(dsn, **limits.connect_kwargs(idle_session_s))
    _keepalive(conn, limits)
    await _init_connection(conn)
    return conn


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("goldenhour.infra") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; return those applied."""
    # No statement timeout: a migration may rightly take long on a big table.
    conn = await asyncpg.connect(dsn, timeout=DbLimits().connect_timeout_s)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in _migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
            log.info("db.migrated", version=version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied


async def audit(
    conn: asyncpg.Connection,
    action: str,
    child_id: str | None,
    alert_id: object | None,
    detail: dict,
    actor: str = "system:streams",
) -> None:
    """Append one line to the audit log, inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO audit_log (actor, action, child_id, alert_id, detail)"
        " VALUES ($1, $2, $3, $4, $5)",
        actor,
        action,
        child_id,
        alert_id,
        detail,
    )


async def mark_ready(pool: asyncpg.Pool, part: str) -> None:
    """Announce that this worker holds its partitions and is taking work."""
    await pool.execute(
        "INSERT INTO worker_readiness (part, pid, host) VALUES ($1, $2, $3)"
        " ON CONFLICT (part, host, pid) DO UPDATE SET ready_at = now(), beat_at = now()",
        part,
        os.getpid(),
        socket.gethostname(),
    )


async def beat(pool: asyncpg.Pool, part: str) -> None:
    """This worker still holds its partitions (call every few seconds while it does)."""
    await pool.execute(
        "UPDATE worker_readiness SET beat_at = now() WHERE part = $1 AND host = $2 AND pid = $3",
        part,
        socket.gethostname(),
        os.getpid(),
    )


async def unmark_ready(pool: asyncpg.Pool, part: str) -> None:
    """This worker gave up its partitions (revoked, stopping)."""
    await pool.execute(
        "DELETE FROM worker_readiness WHERE part = $1 AND host = $2 AND pid = $3",
        part,
        socket.gethostname(),
        os.getpid(),
    )


# A worker whose beat is older than this no longer counts as holding its partitions.
BEAT_STALE_S = 10.0


def expected_versions() -> list[str]:
    """The migrations this code expects to find applied, oldest first."""
    return [version for version, _ in _migrations()]


def schema_gap(applied: set[str], expected: list[str]) -> list[str]:
    """The expected migrations not yet applied (empty: the schema is what this code needs).

    A database ahead of the code (a newer version applied by a newer release during a rolling
    upgrade) is not a gap: migrations only add, so older code still runs on it."""
    return [version for version in expected if version not in applied]


async def applied_versions(dsn: str, limits: DbLimits | None = None) -> set[str]:
    """The migrations applied to the database (empty when it was never migrated)."""
    limits = limits or DbLimits()
    conn = await asyncpg.connect(dsn, **limits.connect_kwargs())
    try:
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            return set()
        return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    finally:
        await conn.close()


async def wait_for_schema(dsn: str, limits: DbLimits | None = None, cap_s: float = 5.0) -> None:
    """Return once every migration this code expects is applied, never applying one: the
    one-shot `goldenhour migrate` job does. Backs off up to `cap_s` between looks and logs
    what it waits for whenever that changes; a database that cannot be reached yet is waited
    for the same way."""
    expected = expected_versions()
    looks, last = 0, ""
    while True:
        try:
            gap = schema_gap(await applied_versions(dsn, limits), expected)
            why = f"{len(gap)} migration(s) not applied, from {gap[0]}" if gap else ""
        except Exception as exc:
            if not is_transient(exc):
                raise
            why = f"database unreachable: {exc!r}"[:300]
        if not why:
            if looks:
                log.info("db.schema_ready", version=expected[-1] if expected else None)
            return
        looks += 1
        if why != last:
            log.warning("db.waiting_for_schema", expected=expected[-1], reason=why)
            last = why
        await asyncio.sleep(delay(looks, 0.25, cap_s))


async def migrate_or_wait(dsn: str, mode: str, limits: DbLimits | None = None) -> None:
    """At a part's start: apply the migrations (`auto`), or wait for the schema (`wait`)."""
    if mode == "wait":
        await wait_for_schema(dsn, limits)
    else:
        await migrate(dsn)
