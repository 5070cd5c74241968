"""The replicas of a chaos run as OS processes, and the process manager that restarts them.

A kill by the harness is the fault under test; any other exit is a finding, recorded with the
part's log.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from goldenhour.dev.servers import die_with_parent

log = structlog.get_logger(__name__)

RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


@dataclass
class Exit:
    """A part's process ended: by the harness's kill, or on its own."""

    name: str
    pid: int
    returncode: int | None
    at: float
    killed: bool


@dataclass
class Part:
    """One replica of a part (`api-1`, `streams-2` …) as an OS process, logging to a file."""

    name: str
    part: str
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    killed_at: float | None = None  # set by the harness's kill, cleared on restart
    held: bool = False  # kept down by the harness: the manager does not start it again

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "goldenhour", self.part],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        self.starts += 1
        self.killed_at = None
        log.info("chaos.part_started", part=self.name, pid=self.proc.pid, start=self.starts)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.alive():
            self.killed_at = time.time()
            self.proc.kill()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def manage(parts: Mapping[str, Part], exits: list[Exit]) -> None:
    """Restart a replica that exited, backing off if it keeps exiting, and record each exit in
    `exits`; never returns."""
    restart_at: dict[str, float] = {}
    streak: dict[str, int] = {}
    while True:
        try:
            now = time.time()
            for p in parts.values():
                if p.proc is not None and not p.alive():
                    killed = p.killed_at is not None
                    exits.append(Exit(p.name, p.pid, p.proc.returncode, now, killed))
                    if not killed:
                        log.error("chaos.part_exited", part=p.name, rc=p.proc.returncode)
                    n = 0 if killed else streak.get(p.name, 0) + 1
                    streak[p.name] = n
                    restart_at[p.name] = now + (RESTART_BACKOFF_S[min(n, 3)] if n else 0.2)
                    p.proc = None
                if p.proc is None and not p.held and now >= restart_at.get(p.name, 0.0):
                    try:
                        p.start()
                    except Exception:
                        log.exception("chaos.part_start_failed", part=p.name)
                        restart_at[p.name] = now + RESTART_BACKOFF_S[-1]
        except Exception:  # the manager must outlive any error of its own
            log.exception("chaos.manager_error")
        await asyncio.sleep(0.25)
