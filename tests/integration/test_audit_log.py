"""The audit log is append-only in the database itself: no role of the application can rewrite
or remove a line, whatever the code above it does."""

from __future__ import annotations

import asyncpg
import pytest

from goldenhour.infra.db import audit

CHANGES = {
    "update": "UPDATE audit_log SET actor = 'user:someone-else', detail = '{}' WHERE id = $1",
    "delete": "DELETE FROM audit_log WHERE id = $1",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_line_can_be_neither_changed_nor_removed(pool: asyncpg.Pool, change: str) -> None:
    async with pool.acquire() as conn:
        await audit(
            conn,
            "alert.acknowledged",
            "LBH-2026-0042",
            None,
            {"via": "sms"},
            actor="user:lbh-dm1",
        )
        before = await conn.fetchrow("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(CHANGES[change], before["id"])
        after = await conn.fetchrow("SELECT * FROM audit_log WHERE id = $1", before["id"])
        count = await conn.fetchval("SELECT count(*) FROM audit_log")
    assert after is not None and dict(after) == dict(before)
    assert after["actor"] == "user:lbh-dm1" and after["detail"] == {"via": "sms"}
    assert count == 1


async def test_deleting_every_line_at_once_is_refused_too(pool: asyncpg.Pool) -> None:
    """A DELETE without WHERE is refused whole: not one line goes."""
    async with pool.acquire() as conn:
        await audit(conn, "console.signed_in", None, None, {}, actor="user:lbh-dm1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM audit_log")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
