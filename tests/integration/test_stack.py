"""Integration tests for the embedded Tansu + PostgreSQL stack, against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from goldenhour.dev.servers import sweep_stale_dirs
from goldenhour.dev.stack import EmbeddedStack, StackError
from goldenhour.dev.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(durable=False) as s:
        yield s


def _pid_gone(pid: int) -> bool:
    """True if the process no longer runs (an unreaped zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _all_gone(pids: list[int]) -> bool:
    left = [p for p in pids if not _pid_gone(p)]
    assert not left, f"still running: {left}"
    return True


def _read_until(proc: subprocess.Popen[str], want: set[str]) -> dict[str, str]:
    """Read KEY=VALUE lines from the child's stdout (skipping log lines) until all keys seen."""
    assert proc.stdout is not None
    found: dict[str, str] = {}
    for line in proc.stdout:
        key, _, value = line.strip().partition("=")
        if key in want:
            found[key] = value
        if want <= found.keys():
            return found
    raise AssertionError(f"child exited before printing {want - found.keys()}")


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def test_postgres_answers(stack: EmbeddedStack) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "goldenhour"
        assert int(await conn.fetchval("show max_connections")) >= 200
    finally:
        await conn.close()


async def test_create_database(stack: EmbeddedStack) -> None:
    name = _unique("t")
    url = stack.create_database(name)
    assert url.endswith(f"/{name}")
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("select current_database()") == name
    finally:
        await conn.close()
    with pytest.raises(StackError, match="already exists"):
        stack.create_database(name)
    with pytest.raises(StackError, match="invalid database name"):
        stack.create_database("x; drop database goldenhour")


async def test_kafka_round_trip(stack: EmbeddedStack) -> None:
    topic = _unique("roundtrip")
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=_unique("g"),
        auto_offset_reset="earliest",
        # Tansu holds a JoinGroup for half the session timeout (min 1 s): keep it short.
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        assert len(consumer.partitions_for_topic(topic) or ()) == 4
        msg = await consumer.getone()
        assert (msg.key, msg.value) == (b"k1", b"hello")
    finally:
        await consumer.stop()


def test_second_stack_from_a_thread_and_clean_stop(stack: EmbeddedStack) -> None:
    other = EmbeddedStack(durable=False)
    # PDEATHSIG follows the spawning thread: the servers must outlive a thread that started them.
    starter = threading.Thread(target=other.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.3)
        assert other.alive()
        assert {other.kafka_port, other.postgres_port}.isdisjoint(
            {stack.kafka_port, stack.postgres_port}
        )
        pids = list(other.pids.values())
        ports = [other.kafka_port, other.postgres_port]
        data_dir = other.data_dir
        assert all(_port_open(p) for p in ports)
    finally:
        other.stop()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(_port_open(p) for p in ports)
    assert data_dir is not None and not data_dir.exists()
    other.stop()  # idempotent
    assert stack.alive()


async def _sql(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_given_data_dir_persists() -> None:
    # A world-traversable parent: when run as root, postgres runs as `nobody`.
    parent = Path(tempfile.mkdtemp(prefix="goldenhour-test-"))
    parent.chmod(0o755)
    data_dir = parent / "stack"
    try:
        with EmbeddedStack(data_dir=data_dir) as s:
            asyncio.run(_sql(s.database_url, "create table kept as select 42 as v"))
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        with EmbeddedStack(data_dir=data_dir) as s:
            assert asyncio.run(_sql(s.database_url, "select v from kept")) == 42
    finally:
        shutil.rmtree(parent, ignore_errors=True)


_ORPHAN_SCRIPT = """
import json, sys, time
from goldenhour.dev.stack import EmbeddedStack
s = EmbeddedStack(durable=False).start()
print("PIDS=" + json.dumps(list(s.pids.values())), flush=True)
print("DIR=" + str(s.data_dir), flush=True)
time.sleep(60)
"""


def test_children_die_with_sigkilled_parent() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    info: dict[str, str] = {}
    try:
        info = _read_until(proc, {"PIDS", "DIR"})
        pids = [int(p) for p in json.loads(info["PIDS"])]
        assert len(pids) == 2 and not any(_pid_gone(p) for p in pids)
        proc.kill()
        proc.wait(timeout=5)
        asyncio.run(eventually(lambda: _all_gone(pids), 5.0, "the servers to die with the parent"))
        # The SIGKILLed parent never ran its cleanup: the next stack start sweeps its folder.
        sweep_stale_dirs()
        assert not Path(info["DIR"]).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if info.get("DIR"):
            shutil.rmtree(info["DIR"], ignore_errors=True)


_UP_SCRIPT = "from goldenhour.dev.stack import stack_up_main; raise SystemExit(stack_up_main())"


def test_stack_up_main_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _UP_SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        lines = _read_until(proc, {"GOLDENHOUR_KAFKA_BOOTSTRAP", "GOLDENHOUR_DATABASE_URL"})
        kafka = lines["GOLDENHOUR_KAFKA_BOOTSTRAP"]
        db_url = lines["GOLDENHOUR_DATABASE_URL"]
        assert kafka.startswith("127.0.0.1:") and db_url.startswith("postgresql://goldenhour@")
        ports = [int(kafka.rsplit(":", 1)[1]), int(db_url.rsplit(":", 1)[1].split("/")[0])]
        assert all(_port_open(p) for p in ports)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not any(_port_open(p) for p in ports)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
