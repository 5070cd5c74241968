"""A part whose supervisor was SIGKILLed ends even when its graceful stop hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from goldenhour.dev.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]

# The part: ignores SIGTERM, as a graceful stop stuck on a dead broker would, and sleeps.
PART = textwrap.dedent(
    """
    import signal, time
    from goldenhour.cli import exit_when_orphaned
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_when_orphaned(grace_s=0.5)
    print("ready", flush=True)
    time.sleep(120)
    """
)

# The supervisor: starts the part, says its PID, then waits to be killed.
SUPERVISOR = textwrap.dedent(
    f"""
    import subprocess, sys, time
    part = subprocess.Popen([sys.executable, "-c", {PART!r}], stdout=subprocess.PIPE, text=True)
    assert part.stdout.readline().strip() == "ready"
    print(part.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in all but name: reaped by init soon.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_an_orphaned_part_that_ignores_sigterm_still_exits() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    part_pid = 0
    try:
        part_pid = int(supervisor.stdout.readline())  # type: ignore[union-attr]
        assert _alive(part_pid)
        supervisor.kill()
        supervisor.wait()
        await eventually(lambda: not _alive(part_pid), 30, "the orphaned part to exit", every=0.1)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        if part_pid and _alive(part_pid):
            os.kill(part_pid, signal.SIGKILL)
