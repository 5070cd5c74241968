"""`goldenhour dlq list|show ID|replay ID|--all|discard ID --reason …`: the dead letters, for an
operator.

Works against a running system: it needs only the database (`GOLDENHOUR_DATABASE_URL`). A replay
goes through the normal path (an outbox row the relay publishes, a consumer idempotent on
event_id), so it is safe to run while every part is up.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence

import asyncpg

from goldenhour.infra import dead_letters
from goldenhour.infra.db import DbLimits, connect
from goldenhour.infra.settings import Settings
from goldenhour.services.db import OUTBOX_CHANNEL

ERROR_WIDTH = 60


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `dlq` action; 0 on success, 1 when a dead letter named is unknown or refused."""
    if not settings.database_url:
        raise SystemExit("goldenhour dlq: GOLDENHOUR_DATABASE_URL is not set")
    return asyncio.run(_main(settings.database_url, settings.db_limits, args))


async def _main(dsn: str, limits: DbLimits, args: argparse.Namespace) -> int:
    try:
        conn = await connect(dsn, limits)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"goldenhour dlq: cannot reach the database: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "list":
            print(table(await dead_letters.list_open(conn)))
            return 0
        if args.action == "show":
            letter = await dead_letters.get(conn, args.id)
            if letter is None:
                print(f"goldenhour dlq: no dead letter {args.id}", file=sys.stderr)
                return 1
            print(describe(letter))
            return 0
        if args.action == "discard":
            return await _discard(conn, args)
        return await _replay(conn, args)
    finally:
        await conn.close()


async def _replay(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    ids = [r["id"] for r in await dead_letters.list_open(conn)] if args.all else [args.id]
    if not ids:
        print("no dead letters to replay")
        return 0
    by = getpass.getuser()
    refused = 0
    for dead_id in ids:
        try:
            outbox_id = await dead_letters.replay(conn, dead_id, by, OUTBOX_CHANNEL)
        except dead_letters.Refused as exc:
            print(f"goldenhour dlq: {exc}; nothing done", file=sys.stderr)
            refused += 1
            continue
        print(f"dead letter {dead_id} replayed (outbox row {outbox_id})")
    return 1 if refused else 0


async def _discard(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    reason = args.reason.strip()
    if len(reason) < 10:
        print("goldenhour dlq: say why in --reason (10 characters at least)", file=sys.stderr)
        return 1
    try:
        await dead_letters.discard(conn, args.id, getpass.getuser(), reason)
    except dead_letters.Refused as exc:
        print(f"goldenhour dlq: {exc}; nothing done", file=sys.stderr)
        return 1
    print(f"dead letter {args.id} discarded")
    return 0


def _first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def table(rows: Sequence[asyncpg.Record]) -> str:
    """The open dead letters as a plain table."""
    if not rows:
        return "no dead letters"
    head = ("id", "failed_at", "consumer", "reason", "case", "event", "error")
    lines = [
        (
            str(r["id"]),
            f"{r['failed_at']:%Y-%m-%d %H:%M:%S}",
            r["consumer"],
            r["reason"],
            r["child_id"] or "-",
            str(r["event_id"]) if r["event_id"] else "-",
            _first_line(r["error"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (head, *lines)
    )


def raw_text(raw: bytes) -> str:
    """The raw record as text where it is text (pretty JSON where it parses), else hex."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"(not UTF-8, {len(raw)} bytes) {raw.hex()}"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def describe(letter: asyncpg.Record) -> str:
    """One dead letter in full."""
    fields = [
        ("id", letter["id"]),
        ("status", letter["status"]),
        ("failed_at", letter["failed_at"]),
        ("consumer", letter["consumer"]),
        ("topic", letter["topic"]),
        ("partition", letter["kafka_partition"]),
        ("offset", letter["kafka_offset"]),
        ("key", letter["key"].decode("utf-8", "replace") if letter["key"] is not None else None),
        ("case", letter["child_id"]),
        ("event", letter["event_id"]),
        ("reason", letter["reason"]),
        ("replayed_at", letter["replayed_at"]),
        ("replayed_by", letter["replayed_by"]),
        ("discarded_at", letter["discarded_at"]),
        ("discarded_by", letter["discarded_by"]),
        ("discard_reason", letter["discard_reason"]),
    ]
    lines = [f"{name + ':':15} {'-' if value is None else value}" for name, value in fields]
    lines += ["error:", _indent(letter["error"]), "raw record:", _indent(raw_text(letter["raw"]))]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
