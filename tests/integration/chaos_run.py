"""`goldenhour chaos` as its tests run it: a process of its own, bounded, stopped if it
overruns (SIGTERM first: the harness then stops every process it started)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ChaosRun:
    table: str  # the printed report, for an assertion's message
    result: dict  # the JSON result
    returncode: int


def run_chaos(args: list[str], out: Path, timeout_s: float) -> ChaosRun:
    """Run the harness with `args`, its JSON written to `out`; the report is printed (shown with
    -s, and on a failure)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "goldenhour", "chaos", *args, "--json", str(out)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    table = stdout.split("\n{", 1)[0][-6000:]
    print(table)
    assert out.exists(), table
    return ChaosRun(table, json.loads(out.read_text()), proc.returncode)
