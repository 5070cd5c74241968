"""`goldenhour run`: every part as a child process, restarted when it exits, over the embedded
broker and database (themselves restarted when one dies) unless both addresses are set."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import structlog

from goldenhour.dev.restarts import ReadyLine, RestartPolicy, Restarts
from goldenhour.dev.stack import EmbeddedStack, StackError, die_with_parent
from goldenhour.infra.settings import Settings

log = structlog.get_logger(__name__)

PARTS = ("api", "streams", "dispatcher")
# What the API's /readyz waits for under `run`: both workers holding their partitions.
READY_REQUIRES = "streams,dispatcher"
_TICK_S = 0.2
_READY_POLL_S = 0.5
_STOP_TIMEOUT_S = 10.0


class PartProcess:
    """One part (`api`, `streams` or `dispatcher`) as an OS process."""

    def __init__(self, part: str, env: Mapping[str, str]) -> None:
        self.part = part
        self.env = dict(env)
        self.proc: subprocess.Popen | None = None

    def start(self) -> PartProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "goldenhour", self.part],
            env=self.env,
            stdin=subprocess.DEVNULL,
            # A terminal's Ctrl-C reaches only the owner, which stops the parts before the
            # broker and database; if the owner dies, the part gets SIGTERM.
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        log.info("part.started", part=self.part, pid=self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.part} was never started")
        return self.proc.pid

    @property
    def exit_code(self) -> int | None:
        """The exit code once it has exited (negative: the signal that ended it)."""
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash a restart must survive."""
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM, without waiting (stop_all waits for every part at once)."""
        if self.proc is not None and self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it has not stopped in time."""
        self.terminate()
        self.wait_or_kill(timeout)

    def wait_or_kill(self, timeout: float) -> None:
        """Wait for it to exit, SIGKILL it if it has not in time."""
        if self.proc is None:
            return
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("part.kill", part=self.part, pid=self.proc.pid, after_s=timeout)
            self.proc.kill()
            code = self.proc.wait()
        log.info("part.stopped", part=self.part, pid=self.proc.pid, exit_code=code)


def stop_all(parts: list[PartProcess], timeout: float = _STOP_TIMEOUT_S) -> None:
    """SIGTERM every part at once, then wait for each (SIGKILL once `timeout` has passed)."""
    for part in parts:
        part.terminate()
    deadline = time.monotonic() + timeout
    for part in parts:
        part.wait_or_kill(max(0.0, deadline - time.monotonic()))


class GiveUp(Exception):
    """A part or server keeps exiting, or cannot be started: `run` stops with this message."""


# --- the data folder --------------------------------------------------------------------------


def default_data_dir(settings: Settings) -> Path:
    """GOLDENHOUR_DATA_DIR, else the user's data directory; as root /var/lib/goldenhour, which
    PostgreSQL (run as `nobody`) can reach where root's home cannot."""
    if settings.data_dir is not None:
        return settings.data_dir.expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/goldenhour")
    from platformdirs import user_data_dir

    return Path(user_data_dir("goldenhour"))


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the folder for this run; a second `run` on it stops at once with the reason."""
    lock = open(data_dir / "run.lock", "a+")  # held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise GiveUp(f"another `goldenhour run` (PID {holder}) uses {data_dir}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _secret_key(data_dir: Path) -> str:
    """The key signing email links, kept with the data so links outlive a restart of `run`."""
    path = data_dir / "secret_key"
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def _fresh_scratch(data_dir: Path) -> Path:
    """The parts' temporary files (faust's tables): emptied at start, since a killed part
    leaves its folder behind."""
    scratch = data_dir / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    return scratch


# --- the supervisor ---------------------------------------------------------------------------


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
            lock = _lock_data_dir(data_dir)
            print(f"Golden Hour data in {data_dir}", flush=True)
            env["TMPDIR"] = str(_fresh_scratch(data_dir))
            stack = EmbeddedStack(data_dir=data_dir, durable=True)
            stack.start()
            env["GOLDENHOUR_KAFKA_BOOTSTRAP"] = stack.kafka_bootstrap
            env["GOLDENHOUR_DATABASE_URL"] = stack.database_url
            print(
                f"embedded Kafka {stack.kafka_bootstrap}, PostgreSQL {stack.database_url}",
                flush=True,
            )
            if not settings.secret_key:
                env["GOLDENHOUR_SECRET_KEY"] = _secret_key(data_dir)
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
