"""The parts of `goldenhour run` (`api`, `streams`, `dispatcher`) as OS processes of their own,
started in a session of their own and ended with their owner."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import structlog

from goldenhour.dev.servers import die_with_parent

log = structlog.get_logger(__name__)

PARTS = ("api", "streams", "dispatcher")
_STOP_TIMEOUT_S = 10.0


class PartProcess:
    """One part (`api`, `streams` or `dispatcher`) as an OS process."""

    def __init__(self, part: str, env: Mapping[str, str], log_path: Path | None = None) -> None:
        self.part = part
        self.env = dict(env)
        # Where its log lines go (appended, so a restart adds to them); unset: the owner's.
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> PartProcess:
        with contextlib.ExitStack() as files:
            stderr = files.enter_context(self.log_path.open("ab")) if self.log_path else None
            self.proc = self._popen(stderr)
        log.info("part.started", part=self.part, pid=self.proc.pid)
        return self

    def _popen(self, stderr: IO[bytes] | None) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "goldenhour", self.part],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
            # A terminal's Ctrl-C reaches only the owner, which stops the parts before the
            # broker and database; if the owner dies, the part gets SIGTERM.
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )

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
