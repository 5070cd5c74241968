"""Runs the parts of Golden Hour as child processes and stops every one it started."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import structlog

from infra.settings import Settings
from infra.stack import die_with_parent

log = structlog.get_logger(__name__)

PARTS = ("api", "streams", "dispatcher")


class PartProcess:
    """One part (`api`, `streams` or `dispatcher`) as an OS process."""

    def __init__(self, part: str, env: Mapping[str, str]) -> None:
        self.part = part
        self.env = dict(env)
        self.proc: subprocess.Popen | None = None

    def start(self) -> PartProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", self.part],
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
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash a restart must survive."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped in time."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("part.kill", part=self.part, pid=self.proc.pid)
            self.proc.kill()
            self.proc.wait()


def run_all(settings: Settings) -> int:
    """`goldenhour run`: the embedded stack if needed, then every part, until a signal."""
    from infra.stack import EmbeddedStack

    env = dict(os.environ)
    stack = None
    if not (settings.kafka_bootstrap and settings.database_url):
        stack = EmbeddedStack()
        stack.start()
        env["GOLDENHOUR_KAFKA_BOOTSTRAP"] = stack.kafka_bootstrap
        env["GOLDENHOUR_DATABASE_URL"] = stack.database_url
        print(
            f"embedded Kafka {stack.kafka_bootstrap}, PostgreSQL {stack.database_url}", flush=True
        )
    if not settings.secret_key:
        # The parts must share one key for email links to work; this one lasts until they stop.
        env["GOLDENHOUR_SECRET_KEY"] = secrets.token_urlsafe(32)
        log.warning("secret_key.generated", detail="set GOLDENHOUR_SECRET_KEY to keep links valid")
    parts = [PartProcess(p, env) for p in PARTS]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for part in parts:
            part.start()
        while not stopping:
            for part in parts:
                if not part.alive():
                    log.error("part.exited", part=part.part)
                    stopping = True
            time.sleep(0.2)
    finally:
        for part in parts:
            part.stop()
        if stack is not None:
            stack.stop()
    return 0
