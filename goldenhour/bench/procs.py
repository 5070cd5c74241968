"""Peak RSS and CPU seconds of every process the benchmark runs, and py-spy profiles of them.

Sampled twice a second. A part that is killed and restarted counts as one: its peak is the
larger of the two lives, its CPU the sum. PostgreSQL is one process per connection sharing one
buffer pool, so its RSS is the largest shared part plus what each process has of its own
(summing plain RSS would count the shared buffers once per connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import structlog

log = structlog.get_logger(__name__)

MB = 1024 * 1024


class Sampler:
    """Samples the processes `pids()` names ({name: pid}) until stopped."""

    def __init__(self, pids: Callable[[], dict[str, int]], every_s: float = 0.5) -> None:
        self.pids = pids
        self.every_s = every_s
        self.peak_rss: dict[str, float] = {}
        self._cpu: dict[str, dict[int, float]] = {}  # name -> pid -> latest cpu seconds
        self._procs: dict[int, psutil.Process] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every_s)

    def _proc(self, pid: int) -> psutil.Process:
        if pid not in self._procs:
            self._procs[pid] = psutil.Process(pid)
        return self._procs[pid]

    def sample(self) -> None:
        for name, pid in self.pids().items():
            try:
                root = self._proc(pid)
                family = [root]
                if name == "postgres":
                    family += root.children(recursive=True)
                rss, shared_max, cpu = 0, 0, self._cpu.setdefault(name, {})
                for p in family:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        mem = p.memory_info()
                        times = p.cpu_times()
                        cpu[p.pid] = times.user + times.system
                        rss += mem.rss - (mem.shared if name == "postgres" else 0)
                        shared_max = max(shared_max, mem.shared)
                if name == "postgres":
                    rss += shared_max
                self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), rss / MB)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    @property
    def cpu_s(self) -> dict[str, float]:
        return {name: round(sum(by_pid.values()), 1) for name, by_pid in self._cpu.items()}

    @property
    def peak_rss_mb(self) -> dict[str, float]:
        return {name: round(mb, 1) for name, mb in self.peak_rss.items()}


class Profiler:
    """py-spy record of given processes for one phase, as collapsed stacks (one line a stack)."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.out = out / "profiles"
        self.enabled = enabled
        self._running: list[subprocess.Popen] = []

    def start(self, phase: str, pids: dict[str, int], seconds: float) -> None:
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        for name, pid in pids.items():
            # Collapsed stacks (one line per stack with its sample count): greppable, and
            # flamegraph.pl or speedscope draw them. One recorder per process, at a modest rate,
            # so py-spy's own CPU stays small on two cores.
            argv = [str(spy if spy.exists() else "py-spy"), "record", "--pid", str(pid)]
            argv += ["--duration", str(int(seconds)), "--rate", "50", "--nonblocking"]
            argv += ["--format", "raw", "-o", str(self.out / f"{phase}-{name}.txt")]
            self._running.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        log.info("bench.profiling", phase=phase, pids=pids, seconds=seconds)

    def stop(self) -> None:
        """Wait briefly for the recorders to write their files, then end them."""
        for proc in self._running:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
                if proc.poll() is None:
                    proc.kill()
        self._running.clear()


def self_pid() -> dict[str, int]:
    """This process: the load generator with the local Twilio and SMTP servers."""
    return {"bench": os.getpid()}
