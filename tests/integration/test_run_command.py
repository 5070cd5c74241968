"""`goldenhour run`: one command starts the embedded stack and every part, and Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from infra.devsystem import directory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.add(int(entry.name))
    return found | {g for c in found for g in _children(c)}


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_starts_everything_and_stops_everything(tmp_path):
    config, keys = directory()
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOLDENHOUR_KAFKA_BOOTSTRAP", "GOLDENHOUR_DATABASE_URL")
    }
    env.update(
        GOLDENHOUR_CONFIG=str(path),
        GOLDENHOUR_API_PORT=str(port),
        GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S="2",
        GOLDENHOUR_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready, "the API of `goldenhour run` never became ready"
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/alerts",
            headers={"Authorization": f"Bearer {keys['lbh-dm1']}"},
        )
        assert r.status_code == 200 and r.json() == []
        started = _children(proc.pid)
        assert len(started) >= 5  # api, streams, dispatcher, broker, database (and its workers)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.5)
        alive = {
            p
            for p in started
            if Path(f"/proc/{p}").exists()
            and "Z" not in (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0])
        }
        assert alive == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
    assert "embedded Kafka" in output
