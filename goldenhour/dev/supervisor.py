"""`goldenhour run`: every part as a child process, restarted when it exits, over the embedded
broker and database (themselves restarted when one dies) unless both addresses are set."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import structlog

from goldenhour.dev.data_folder import default_data_dir, fresh_scratch, lock_data_dir, secret_key
from goldenhour.dev.parts import PARTS, PartProcess, stop_all
from goldenhour.dev.restarts import GiveUp, ReadyLine, RestartPolicy, Restarts
from goldenhour.dev.stack import EmbeddedStack, StackError
from goldenhour.infra.settings import Settings

__all__ = ["Supervisor", "probe_ready", "run_all"]

log = structlog.get_logger(__name__)

# What the API's /readyz waits for under `run`: both workers holding their partitions.
READY_REQUIRES = "streams,dispatcher"
_TICK_S = 0.2
_READY_POLL_S = 0.5


@dataclass
class _Child:
    part: str
    restarts: Restarts
    proc: PartProcess | None = None
    started_at: float = 0.0
    start_at: float | None = 0.0  # when to (re)start it; None while it runs


class Supervisor:
    """Keeps every part and embedded server running until told to stop, or until one cannot."""

    def __init__(
        self,
        env: Mapping[str, str],
        stack: EmbeddedStack | None,
        ready_url: str,
        ready_line: ReadyLine,
        topic_prefix: str,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = dict(env)
        self.stack = stack
        self.ready_url = ready_url
        self.ready_line = ready_line
        self.topic_prefix = topic_prefix
        self.policy = policy or RestartPolicy()
        self.say = say
        self.clock = clock
        self.children = [_Child(p, Restarts(self.policy)) for p in PARTS]
        self.servers = {name: Restarts(self.policy) for name in ("tansu", "postgres")}
        self._server_start_at: dict[str, float] = {}
        self._server_started = {name: clock() for name in self.servers}
        self.stopping = False
        self._next_ready_poll = 0.0
        self._errors = 0
        self._rng = random.Random()

    def run(self) -> int:
        """Until a signal (0) or until giving up (1, with one line saying why)."""
        try:
            while not self.stopping:
                try:
                    now = self.clock()
                    self._tend_servers(now)
                    self._tend_parts(now)
                    self._tend_readiness(now)
                    if self._errors:
                        log.info("supervisor.recovered", after_errors=self._errors)
                        self._errors = 0
                except GiveUp:
                    raise
                except Exception:  # the supervisor itself must never stop on a surprise
                    self._errors += 1
                    if self._errors == 1:
                        log.exception("supervisor.error")
                    time.sleep(min(5.0, _TICK_S * 2**self._errors) * self._rng.uniform(0.5, 1))
                time.sleep(_TICK_S)
        except GiveUp as exc:
            self.say(f"goldenhour run: giving up: {exc}")
            return 1
        finally:
            stop_all([c.proc for c in self.children if c.proc is not None])
        return 0

    def _tend_servers(self, now: float) -> None:
        """Restart a dead broker or database on its port and data (the parts keep their
        addresses); a new broker has an empty log, so its topics are made again at once."""
        if self.stack is None:
            return
        for name, code in self.stack.exited().items():
            if name not in self._server_start_at:
                self._server_down(name, f"exit code {code}", now)
        for name, start_at in list(self._server_start_at.items()):
            if now < start_at:
                continue
            try:
                if name == "tansu":
                    self.stack.restart_kafka()
                    self._ensure_topics(self.stack.kafka_bootstrap)
                else:
                    self.stack.start_postgres()
            except StackError as exc:
                log.error("server.restart_failed", server=name, error=str(exc))
                self._server_down(name, str(exc).splitlines()[0], now)
                continue
            del self._server_start_at[name]
            self._server_started[name] = now
            log.info("server.restarted", server=name, pids=self.stack.pids)

    def _server_down(self, name: str, why: str, now: float) -> None:
        ran_for = now - self._server_started.get(name, now)
        delay = self.servers[name].exited(ran_for, now, self._rng.random())
        log.error(
            "server.exited",
            server=name,
            why=why,
            attempt=self.servers[name].attempt,
            restart_in_s=None if delay is None else round(delay, 2),
        )
        if delay is None:
            raise GiveUp(f"the embedded {name} keeps dying ({why})")
        self._server_start_at[name] = now + delay

    def _ensure_topics(self, bootstrap: str) -> None:
        """Make the topics on a new broker before a part's producer auto-creates one wrongly."""
        from goldenhour.infra.topics import Topics, ensure_topics

        topics = Topics(self.topic_prefix)
        try:
            asyncio.run(asyncio.wait_for(ensure_topics(bootstrap, topics), 30))
        except Exception as exc:  # the API makes them too, whenever it starts
            log.warning("server.topics_not_made", error=repr(exc))

    def _tend_parts(self, now: float) -> None:
        for child in self.children:
            proc = child.proc
            if child.start_at is None and proc is not None and not proc.alive():
                code = proc.exit_code
                delay = child.restarts.exited(now - child.started_at, now, self._rng.random())
                if delay is None:
                    raise GiveUp(
                        f"the {child.part} part exited {self.policy.max_failures} times within "
                        f"{self.policy.window_s:.0f} s (last exit code {code}); "
                        "its log lines above say why"
                    )
                log.error(
                    "part.exited",
                    part=child.part,
                    exit_code=code,
                    attempt=child.restarts.attempt,
                    restart_in_s=round(delay, 2),
                )
                child.start_at = now + delay
            if child.start_at is not None and now >= child.start_at:
                if child.restarts.attempt:
                    log.info("part.restarting", part=child.part, attempt=child.restarts.attempt)
                child.proc = PartProcess(child.part, self.env).start()
                child.started_at = now
                child.start_at = None

    def _tend_readiness(self, now: float) -> None:
        if now < self._next_ready_poll:
            return
        self._next_ready_poll = now + _READY_POLL_S
        ready, reason = probe_ready(self.ready_url)
        line = self.ready_line.update(ready, reason, now)
        if line:
            self.say(line)


def probe_ready(url: str) -> tuple[bool, str]:
    """Ask the API's /readyz; (ready, the reason it is not)."""
    try:
        r = httpx.get(url, timeout=1.0)
    except httpx.HTTPError as exc:
        return False, f"the API does not answer ({type(exc).__name__})"
    if r.status_code == 200:
        return True, ""
    try:
        body = r.json()
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "status"}
        reason = json.dumps(body, default=str)
    except ValueError:
        reason = r.text
    return False, f"/readyz {r.status_code} {reason[:300]}"


def run_all(settings: Settings) -> int:
    """`goldenhour run`: the embedded stack if needed, then every part, kept running until a
    signal; non-zero only when it gives up."""
    # One request every half second would be one log line every half second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    env = dict(os.environ)
    env.setdefault("GOLDENHOUR_READY_REQUIRES", READY_REQUIRES)
    # Two workers on one machine cannot share one health port.
    env.pop("GOLDENHOUR_HEALTH_PORT", None)
    stack: EmbeddedStack | None = None
    data_dir: Path | None = None
    lock: IO[str] | None = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        if supervisor is not None:
            supervisor.stopping = True

    supervisor: Supervisor | None = None
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not (settings.kafka_bootstrap and settings.database_url):
            data_dir = default_data_dir(settings)
            # As root, PostgreSQL (run as `nobody`) must pass through this folder.
            data_dir.mkdir(mode=0o755 if os.geteuid() == 0 else 0o700, parents=True, exist_ok=True)
            lock = lock_data_dir(data_dir)
            print(f"Golden Hour data in {data_dir}", flush=True)
            env["TMPDIR"] = str(fresh_scratch(data_dir))
            stack = EmbeddedStack(data_dir=data_dir, durable=True)
            stack.start()
            env["GOLDENHOUR_KAFKA_BOOTSTRAP"] = stack.kafka_bootstrap
            env["GOLDENHOUR_DATABASE_URL"] = stack.database_url
            print(
                f"embedded Kafka {stack.kafka_bootstrap}, PostgreSQL {stack.database_url}",
                flush=True,
            )
            if not settings.secret_key:
                env["GOLDENHOUR_SECRET_KEY"] = secret_key(data_dir)
        elif not settings.secret_key:
            # The parts must share one key for email links to work; this one lasts until they stop.
            env["GOLDENHOUR_SECRET_KEY"] = secrets.token_urlsafe(32)
            log.warning(
                "secret_key.generated", detail="set GOLDENHOUR_SECRET_KEY to keep links valid"
            )
        if stopping:
            return 0
        url = f"http://{settings.api_host}:{settings.api_port}"
        where = f" (data in {data_dir})" if data_dir else ""
        supervisor = Supervisor(
            env,
            stack,
            ready_url=f"{url}/readyz",
            ready_line=ReadyLine(f"Golden Hour is ready: {url}{where}"),
            topic_prefix=settings.topic_prefix,
        )
        return supervisor.run()
    except (GiveUp, StackError) as exc:
        print(f"goldenhour run: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if lock is not None:
            lock.close()
