"""Carries out one fault on the running system and says when it began and ended."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx
import structlog
from aiokafka import AIOKafkaProducer

from goldenhour.chaos import faults
from goldenhour.chaos.faults import Window
from goldenhour.chaos.system import ChaosSystem
from goldenhour.infra.producers import producer_options

log = structlog.get_logger(__name__)

POISON_TIMEOUT_S = 20.0
# Every Twilio operation: a Twilio outage or a throttling storm answers them all.
TWILIO_OPS = ["create", "list", "fetch", "call_create", "call_list", "call_fetch"]
LIST_OPS = ["list", "call_list"]
# A risk change raises this many of the children missing at the time, newest reports first.
RISK_CHANGES = 5


@dataclass
class Context:
    """What a fault may need of the run: the children active now, the poison the broker
    accepted (marker -> when), the risk changes made (child -> when) and how to raise one."""

    children: list[str]
    poisoned: dict[str, float]
    raised: dict[str, float] = field(default_factory=dict)
    raised_events: dict[str, str] = field(default_factory=dict)  # child -> its risk.signal
    at_risk: list[str] = field(default_factory=list)  # medium-risk children missing now
    raise_risk: Callable[[str], Awaitable[str | None]] | None = None


def poison_records(children: list[str]) -> list[tuple[str, bytes, str]]:
    """Three records the intake consumer can never apply, as (key, value, marker): JSON cut
    short, schema_version 2, and a well-formed envelope failing validation (no last_seen_at).
    The marker (an event id) is in each record's bytes, to find it among the dead letters."""
    now = datetime.now(UTC).isoformat()
    out = []
    for i, flavour in enumerate(("parse", "schema", "validation")):
        marker = str(uuid.uuid4())
        child = children[i % len(children)]
        envelope = {
            "event_id": marker,
            "type": "absence.reported",
            "schema_version": 2 if flavour == "schema" else 1,
            "occurred_at": now,
            "child_id": child,
            "data": {} if flavour == "validation" else {"last_seen_at": now},
        }
        record = {
            "event": envelope,
            "submitted_by": {"org_code": "OAK", "user_id": "oak-staff1"},
            "received_at": now,
        }
        raw = json.dumps(record).encode()
        if flavour == "parse":
            raw = raw[: len(raw) // 2]
        out.append((child, raw, marker))
    return out


async def produce_poison(bootstrap: str, topic: str, children: list[str]) -> list[str]:
    """Produce the poison records straight onto the intake topic; the markers the broker acked."""
    options = await asyncio.wait_for(producer_options(bootstrap), POISON_TIMEOUT_S)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options, request_timeout_ms=10_000)
    sent: list[str] = []
    try:
        await asyncio.wait_for(producer.start(), POISON_TIMEOUT_S)
        for key, value, marker in poison_records(children):
            await asyncio.wait_for(
                producer.send_and_wait(topic, value, key=key.encode()), POISON_TIMEOUT_S
            )
            sent.append(marker)
    finally:
        await producer.stop()
    return sent


async def inject(system: ChaosSystem, fault: faults.Fault, label: str, ctx: Context) -> Window:
    """Carry out `fault`; what it did beyond the fault itself goes into `ctx`."""
    stack = system.running_stack
    start = time.time()
    detail = ""
    try:
        if fault.kind == faults.KILL_PART:
            await system.kill(fault.target)
        elif fault.kind == faults.GRACEFUL_STOP:
            detail = await system.graceful_stop(
                fault.target, fault.duration, faults.STOP_KILL_AFTER_S
            )
        elif fault.kind == faults.BROKER_PAUSE:
            stack.signal("tansu", signal.SIGSTOP)
            try:
                await asyncio.sleep(fault.duration)
            finally:
                system.resume("tansu")
        elif fault.kind == faults.BROKER_RESTART:
            await asyncio.to_thread(stack.restart_kafka)
        elif fault.kind == faults.POSTGRES_RESTART:
            await asyncio.to_thread(stack.restart_postgres)
        elif fault.kind == faults.POSTGRES_PAUSE:
            await _pause_postgres(system, fault.duration)
        elif fault.kind == faults.POISON:
            for marker in await produce_poison(
                system.kafka_bootstrap, system.topics.intake, ctx.children
            ):
                ctx.poisoned[marker] = time.time()
        elif fault.kind in faults.STORM_KINDS:
            status = 500 if fault.kind == faults.TWILIO_500 else 429
            await _twilio_outage(system, status, fault.duration, fault.retry_after, TWILIO_OPS)
        elif fault.kind == faults.TWILIO_LIST_FAIL:
            await _twilio_outage(system, 500, fault.duration, None, LIST_OPS)
        elif fault.kind == faults.TWILIO_SLOW_CREATE:
            await _twilio_setting(system, "create_delay", faults.SLOW_CREATE_S, fault.duration)
        elif fault.kind == faults.TWILIO_LIST_LAG:
            await _twilio_setting(system, "list_lag", faults.LIST_LAG_S, fault.duration)
        elif fault.kind in faults.SMTP_KINDS:
            mode = "refuse" if fault.kind == faults.SMTP_REFUSE else "blackhole"
            backlog = await _smtp_down(system, mode, fault.duration)
            detail = f"{backlog} emails due at its end"
        elif fault.kind == faults.RISK_CHANGE:
            raised = await _raise_risk(ctx)
            detail = f"{len(raised)} children raised to high"
        elif fault.kind == faults.POLICY_REORDER:
            await system.redeploy("streams", system.reordered_config())
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
    except Exception as exc:  # a fault that could not be carried out is reported, not fatal
        log.exception("chaos.fault_failed", fault=label)
        label = f"{label} [not done: {exc!r}]"[:120]
        return Window(label, fault.kind, start, time.time(), target=fault.target)
    return Window(label, fault.kind, start, time.time(), detail, fault.target)


async def _twilio_outage(
    system: ChaosSystem, status: int, seconds: float, retry_after: float | None, ops: list[str]
) -> None:
    """The server ends the outage itself after `seconds`, so a harness that dies mid-fault
    leaves no outage behind; the harness waits it out.

    A request that goes unanswered (a loaded server) may still have started the outage, so the
    fault's window is kept whole either way: its messages are never counted late outside it."""
    body = {"status": status, "seconds": seconds, "retry_after": retry_after, "ops": ops}
    try:
        await system.twilio("outage", body)
    except httpx.TimeoutException:
        log.warning("chaos.outage_unanswered", status=status, seconds=seconds)
    await asyncio.sleep(seconds)


async def _twilio_setting(system: ChaosSystem, path: str, value: float, seconds: float) -> None:
    await system.twilio(path, {"seconds": value})
    try:
        await asyncio.sleep(seconds)
    finally:
        await system.twilio(path, {"seconds": 0})


async def _smtp_down(system: ChaosSystem, mode: str, seconds: float) -> int | None:
    """The SMTP server refusing or silent for `seconds`; the emails due when it ends."""
    await system.smtp_mode(mode)
    try:
        await asyncio.sleep(seconds)
        return await _emails_due(system.database_url)
    finally:
        await system.smtp_mode("normal")


async def _emails_due(dsn: str) -> int | None:
    with contextlib.suppress(Exception):  # a figure, not the fault: never let it end the fault
        conn = await asyncpg.connect(dsn, timeout=5, command_timeout=5)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM notifications WHERE channel = 'email'"
                    " AND status IN ('pending', 'sending')"
                )
            )
        finally:
            await conn.close()
    return None


async def _raise_risk(ctx: Context) -> list[str]:
    """A risk signal for the newest medium-risk children still missing: their open alerts
    change policy to high mid-way."""
    if ctx.raise_risk is None:
        raise RuntimeError("the workload has no way to raise a child's risk")
    chosen = [c for c in ctx.at_risk if c not in ctx.raised][-RISK_CHANGES:]
    done = []
    for child in chosen:
        event_id = await ctx.raise_risk(child)
        if event_id is not None:
            ctx.raised[child] = time.time()
            ctx.raised_events[child] = event_id
            done.append(child)
    return done


async def _pause_postgres(system: ChaosSystem, seconds: float) -> None:
    """SIGSTOP the postmaster and then every backend (the postmaster first, so no new one is
    forked in between), hold, and SIGCONT them all."""
    stopped = []
    try:
        for pid in system.postgres_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        await asyncio.sleep(seconds)
    finally:
        for pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGCONT)
        system.resume("postgres")
