"""The Postgres pool and the versioned migrations."""

from __future__ import annotations

import json
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger(__name__)

# Serialises migrators when several replicas start at once.
_MIGRATION_LOCK = 0x601DE4


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak jsonb as Python objects."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection
    )
    assert pool is not None
    return pool


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("infra") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; return those applied."""
    conn = await asyncpg.connect(dsn)
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
    import os
    import socket

    await pool.execute(
        "INSERT INTO worker_readiness (part, pid, host) VALUES ($1, $2, $3)"
        " ON CONFLICT (part, host, pid) DO UPDATE SET ready_at = now()",
        part,
        os.getpid(),
        socket.gethostname(),
    )
