"""Every process of a chaos run: the embedded stack, the providers and each part's replicas.

Parts are restarted when they exit, as a process manager would (`chaos.parts`): a kill by the
harness is the fault under test, any other exit is a finding and is recorded with the part's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import structlog
import yaml

from goldenhour.chaos.config import chaos_config, reordered
from goldenhour.chaos.parts import Exit, Part, manage
from goldenhour.dev import faketime
from goldenhour.dev.devsystem import TWILIO_FROM, TWILIO_SID
from goldenhour.dev.servers import end_server, free_port, spawn_server
from goldenhour.dev.stack import EmbeddedStack
from goldenhour.dev.waiting import eventually
from goldenhour.infra.topics import Topics

log = structlog.get_logger(__name__)

# Two of each worker, so a kill or a pause always leaves a replica to take over; two APIs, so
# the outbox relay has a standby.
REPLICAS = {"api": 2, "streams": 2, "dispatcher": 2}
# A replica killed or redeployed is back once it is ready, or after this long.
BACK_TIMEOUT_S = 60.0
CONTROL_TIMEOUT_S = 5.0


@dataclass
class ChaosSystem:
    """The stack, the providers and every replica, with a process manager over the replicas."""

    run_dir: Path
    scale: float
    # Seconds per minute of the delivery settings (failover, unreachable): see chaos.config.
    fault_minute_s: float = 60.0
    # The first dispatcher's wall clock runs this far ahead of the host's, the second's as far
    # behind: nothing the system promises may depend on the clocks of its hosts.
    skew_s: float = 0.0
    stack: EmbeddedStack | None = None
    parts: dict[str, Part] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    api_urls: list[str] = field(default_factory=list)
    topics: Topics = field(default_factory=Topics)
    twilio_url: str = ""
    smtp_control_url: str = ""
    config: dict = field(default_factory=dict)
    skews: dict[str, float] = field(default_factory=dict)
    # The bearer token of every part's /metrics, which the harness samples.
    metrics_token: str = field(default_factory=lambda: secrets.token_hex(16))
    _twilio: subprocess.Popen | None = None
    _smtp: subprocess.Popen | None = None
    _manager: asyncio.Task | None = None

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def mail_log(self) -> Path:
        """One JSON line per mail the SMTP server accepted."""
        return self.logs / "smtp.jsonl"

    @property
    def running_stack(self) -> EmbeddedStack:
        """The embedded broker and database, once started."""
        if self.stack is None:
            raise RuntimeError("the chaos system's stack is not started")
        return self.stack

    @property
    def database_url(self) -> str:
        return self.running_stack.database_url

    @property
    def kafka_bootstrap(self) -> str:
        return self.running_stack.kafka_bootstrap

    async def start(self, ready_timeout: float = 180.0) -> None:
        """Start everything and return once every replica is ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stack = EmbeddedStack(durable=False)
        await asyncio.to_thread(self.stack.start)
        self.config, self.keys = chaos_config(self.scale, self.fault_minute_s)
        config_path = self.run_dir / "goldenhour.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        auth_token = secrets.token_hex(16)
        twilio_port, smtp_port = free_port(), free_port()
        smtp_control = free_port()
        # Spawned from this thread: a child's parent-death signal fires when the spawning
        # thread ends, and an executor's thread may end before the run does.
        self._twilio = spawn_server(
            ["goldenhour.chaos.providers", "--account-sid", TWILIO_SID, "--auth-token", auth_token],
            twilio_port,
            self.logs / "twilio.log",
            self.logs / "twilio.log",
        )
        self.twilio_url = f"http://127.0.0.1:{twilio_port}"
        self._smtp = spawn_server(
            ["goldenhour.dev.smtp_local", "--control-port", str(smtp_control)],
            smtp_port,
            self.mail_log,
            self.logs / "smtp.log",
        )
        self.smtp_control_url = f"http://127.0.0.1:{smtp_control}"
        prefix = f"gh-{uuid.uuid4().hex[:8]}"
        self.topics = Topics(prefix)
        api_ports = [free_port() for _ in range(REPLICAS["api"])]
        self.api_urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        base = {
            **os.environ,
            "GOLDENHOUR_CONFIG": str(config_path),
            "GOLDENHOUR_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GOLDENHOUR_DATABASE_URL": self.database_url,
            # Status callbacks and links go to the first API; a callback lost while it is down
            # leaves a message `sent` instead of `delivered`, which the checks accept.
            "GOLDENHOUR_PUBLIC_URL": self.api_urls[0],
            "GOLDENHOUR_SECRET_KEY": secrets.token_urlsafe(32),
            "GOLDENHOUR_TOPIC_PREFIX": prefix,
            "GOLDENHOUR_READY_REQUIRES": "streams,dispatcher",
            "TWILIO_ACCOUNT_SID": TWILIO_SID,
            "TWILIO_AUTH_TOKEN": auth_token,
            "TWILIO_FROM_NUMBER": TWILIO_FROM,
            "TWILIO_API_BASE_URL": self.twilio_url,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "SMTP_FROM": "alerts@goldenhour.example",
            # The local SMTP server offers no STARTTLS; a real relay must (the default).
            "SMTP_TLS": "off",
            # A few keys post thousands of events a second: no per-key limit in the way.
            "GOLDENHOUR_API_RATE_LIMIT": "off",
            "GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S": "2",
            "GOLDENHOUR_WEBHOOK_ALLOW_PRIVATE": "1",
            "GOLDENHOUR_METRICS_TOKEN": self.metrics_token,
        }
        for part, count in REPLICAS.items():
            for i in range(1, count + 1):
                name = f"{part}-{i}"
                scratch = self.run_dir / "scratch" / name
                scratch.mkdir(parents=True, exist_ok=True)
                env = {**base, "TMPDIR": str(scratch)}
                if part == "api":
                    env["GOLDENHOUR_API_PORT"] = str(api_ports[i - 1])
                else:
                    env["GOLDENHOUR_HEALTH_PORT"] = str(free_port())
                if part == "dispatcher" and self.skew_s and i <= 2:
                    self.skews[name] = self.skew_s if i == 1 else -self.skew_s
                    env = faketime.skewed(env, self.skews[name])
                self.parts[name] = Part(name, part, env, self.logs / f"{name}.log")
        for p in self.parts.values():
            p.start()
        self._manager = asyncio.create_task(manage(self.parts, self.exits))
        await self.wait_ready(ready_timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Until every API answers ready and every worker replica holds its partitions."""
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready() -> bool:
                with contextlib.suppress(httpx.HTTPError, OSError, asyncpg.PostgresError):
                    answers = [await client.get(f"{url}/readyz") for url in self.api_urls]
                    return (
                        all(r.status_code == 200 for r in answers) and await self._workers_ready()
                    )
                return False

            try:
                await eventually(ready, timeout, "the system ready", every=0.5)
            except AssertionError:
                raise RuntimeError(
                    f"the system was not ready within {timeout:.0f}s; logs in {self.logs}"
                ) from None

    async def _workers_ready(self) -> bool:
        conn = await asyncpg.connect(self.database_url, timeout=5)
        try:
            rows = await conn.fetch("SELECT part, pid FROM worker_readiness")
        finally:
            await conn.close()
        ready = {(r["part"], r["pid"]) for r in rows}
        return all((p.part, p.pid) in ready for p in self.parts.values() if p.part != "api")

    def unexpected_exits(self) -> list[Exit]:
        """Exits the harness did not cause."""
        return [e for e in self.exits if not e.killed]

    def part_names(self) -> list[str]:
        return list(self.parts)

    async def kill(self, name: str, timeout: float = BACK_TIMEOUT_S) -> None:
        """SIGKILL one replica; return once the manager has started it again and it is ready:
        until then the part is down, which is the fault."""
        p = self.parts[name]
        before = p.starts
        p.kill()
        await self._back(p, before, timeout)

    async def graceful_stop(
        self, name: str, down_s: float, kill_after_s: float, timeout: float = BACK_TIMEOUT_S
    ) -> str:
        """SIGTERM one replica, SIGKILL it if it has not exited within `kill_after_s`, keep it
        down until `down_s` after the SIGTERM, then start it again and return once it is
        ready. How it ended, in words."""
        p = self.parts[name]
        proc, before = p.proc, p.starts
        if proc is None or not p.alive():
            raise RuntimeError(f"{name} is not running")
        p.held = True
        p.killed_at = time.time()  # an exit the harness caused
        started = time.monotonic()
        try:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, kill_after_s)
                how = f"exited on SIGTERM in {time.monotonic() - started:.1f} s"
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, kill_after_s)
                how = f"SIGKILL after {kill_after_s:g} s"
            await asyncio.sleep(max(0.0, started + down_s - time.monotonic()))
        finally:
            p.held = False
        await self._back(p, before, timeout)
        return f"{how} (rc {proc.returncode})"

    def worker_urls(self) -> dict[str, str]:
        """Each worker replica's health server (/healthz, /readyz, /metrics)."""
        return {
            p.name: f"http://127.0.0.1:{p.env['GOLDENHOUR_HEALTH_PORT']}"
            for p in self.parts.values()
            if p.part != "api"
        }

    def shared_topics(self) -> dict[str, str]:
        """The topic whose partitions each worker part's replicas share."""
        return {"streams": self.topics.intake, "dispatcher": self.topics.notifications}

    async def redeploy(self, part: str, config: dict, timeout: float = BACK_TIMEOUT_S) -> None:
        """A rolling deploy of `part` with `config`: each replica stopped (SIGTERM) and started
        again on the new file, the next one only once the last is ready."""
        path = self.run_dir / f"goldenhour-{part}-{int(time.time() * 1000)}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for p in [p for p in self.parts.values() if p.part == part]:
            p.env = {**p.env, "GOLDENHOUR_CONFIG": str(path)}
            before = p.starts
            p.killed_at = time.time()  # an exit the harness caused
            await asyncio.to_thread(p.stop)
            await self._back(p, before, timeout)

    async def _back(self, p: Part, before: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # Not started again in time: the readiness wait below says so.
        with contextlib.suppress(AssertionError):
            await eventually(lambda: p.starts != before, timeout, f"{p.name} started", every=0.1)
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def back() -> bool:
                with contextlib.suppress(httpx.HTTPError, OSError, asyncpg.PostgresError):
                    return await self._part_ready(client, p)
                return False

            try:
                left = max(0.0, deadline - time.monotonic())
                await eventually(back, left, f"{p.name} ready", every=0.2)
                return
            except AssertionError:
                pass
        log.warning("chaos.part_not_back", part=p.name, timeout=timeout)

    async def _part_ready(self, client: httpx.AsyncClient, p: Part) -> bool:
        if not p.alive():
            return False
        if p.part == "api":
            port = p.env["GOLDENHOUR_API_PORT"]
            return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
        conn = await asyncpg.connect(self.database_url, timeout=5, command_timeout=5)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM worker_readiness WHERE part = $1 AND pid = $2)",
                    p.part,
                    p.pid,
                )
            )
        finally:
            await conn.close()

    def reordered_config(self) -> dict:
        """This run's config as a deploy that reorders and inserts policy steps leaves it."""
        return reordered(self.config, self.scale)

    async def twilio(self, path: str, body: dict) -> None:
        """One call to the Twilio server's control API (`/_local/...`); raises on a refusal."""
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_S) as client:
            r = await client.post(f"{self.twilio_url}/_local/{path}", json=body)
            r.raise_for_status()

    async def smtp_mode(self, mode: str) -> None:
        """Switch the SMTP server: `normal`, `refuse` or `blackhole`."""
        async with httpx.AsyncClient(timeout=CONTROL_TIMEOUT_S) as client:
            r = await client.post(f"{self.smtp_control_url}/mode", json={"mode": mode})
            r.raise_for_status()

    def postgres_pids(self) -> list[int]:
        """The postmaster and every backend it forked: a pause must freeze them all."""
        root = self.running_stack.pids.get("postgres")
        if root is None:
            return []
        return [root, *_children(root)]

    async def stop(self) -> None:
        """Stop every process this system started; safe to call at any point, more than once."""
        if self._manager is not None:
            self._manager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._manager
            self._manager = None
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.parts.values()))
        for proc in (self._twilio, self._smtp):
            await asyncio.to_thread(end_server, proc)
        self._twilio = self._smtp = None
        if self.stack is not None:
            for server in ("tansu", "postgres"):
                self.resume(server)
            if self.stack.data_dir is not None:
                # The servers' logs live in the stack's folder, which its stop removes.
                for log_file in (self.stack.data_dir / "logs").glob("*.log"):
                    with contextlib.suppress(OSError):
                        shutil.copy(log_file, self.logs / log_file.name)
            await asyncio.to_thread(self.stack.stop)
            self.stack = None

    def resume(self, server: str) -> None:
        """SIGCONT a server (and, for PostgreSQL, its backends); harmless when not paused."""
        if self.stack is None:
            return
        pids = self.postgres_pids() if server == "postgres" else [self.stack.pids.get("tansu", 0)]
        for pid in pids:
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGCONT)


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found
