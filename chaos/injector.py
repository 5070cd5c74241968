"""Carries out one fault on the running system and says when it began and ended."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaProducer

from chaos import faults
from chaos.invariants import Window
from chaos.system import ChaosSystem

log = structlog.get_logger(__name__)

POISON_TIMEOUT_S = 20.0


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
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, request_timeout_ms=10_000
    )
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


async def inject(
    system: ChaosSystem,
    fault: faults.Fault,
    label: str,
    children: list[str],
    poisoned: dict[str, float],
) -> Window:
    """Carry out `fault`; poison the broker accepted goes into `poisoned` (marker -> when)."""
    assert system.stack is not None
    stack = system.stack
    start = time.time()
    try:
        if fault.kind == faults.KILL_PART:
            await system.kill(fault.target)
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
                system.kafka_bootstrap, system.topics.intake, children
            ):
                poisoned[marker] = time.time()
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
    except Exception as exc:  # a fault that could not be carried out is reported, not fatal
        log.exception("chaos.fault_failed", fault=label)
        return Window(f"{label} [not done: {exc!r}]"[:120], fault.kind, start, time.time())
    return Window(label, fault.kind, start, time.time())


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
