"""Embedded dev/test stack: a real Kafka-protocol broker (Tansu) and a real PostgreSQL."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
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
from goldenhour.dev.servers import (
    START_TIMEOUT,
    TMP_PREFIX,
    StackError,
    clear_stale_pid,
    die_with_parent,
    free_port,
    kafka_answers,
    spawner,
    sweep_stale_dirs,
    tansu_bin,
    terminate,
)

__all__ = ["EmbeddedStack", "StackError", "die_with_parent", "stack_up_main"]

log = structlog.get_logger(__name__)

_DB_USER = "goldenhour"
_DB_NAME = "goldenhour"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PORT_ATTEMPTS = 3


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
        if self.pg_bin_dir is None:
            raise StackError("the stack is not started: no PostgreSQL binaries chosen")
        return str(self.pg_bin_dir / name)

    def _data(self) -> Path:
        """The stack's data folder, once started."""
        if self.data_dir is None:
            raise StackError("the stack is not started: no data folder")
        return self.data_dir

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
                sweep_stale_dirs(base)
                self.data_dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base))
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
        out = open(self._data() / "logs" / log_name, "ab")
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
        return spawner().submit(popen).result()

    def _tail(self, log_name: str, lines: int = 20) -> str:
        """Return the last lines of a child's log file, for error messages."""
        try:
            text = (self._data() / "logs" / log_name).read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], name: str, ready: Callable[[], bool], log_name: str
    ) -> bool:
        """Poll until ready; False if the process exited (e.g. port taken), raise on timeout."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if ready():
                return True
            time.sleep(0.02)
        raise StackError(f"{name} did not answer within {START_TIMEOUT}s:\n{self._tail(log_name)}")

    def _start_tansu(self, port: int | None = None) -> None:
        """Start the Tansu broker with in-memory storage, on `port` or a free one.

        Each start is a new cluster id: its memory log begins empty, and the outbox's
        reconciler tells a lost log from a lagging one by that id."""
        env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
        for _ in range(_PORT_ATTEMPTS if port is None else 1):
            port = port or free_port()
            url = f"tcp://127.0.0.1:{port}"
            argv = [
                str(tansu_bin()),
                "broker",
                f"--cluster-id=goldenhour-{uuid.uuid4().hex[:12]}",
                f"--listener-url={url}",
                f"--advertised-listener-url={url}",
                "--storage-engine=memory://tansu/",
            ]
            self._tansu = self._spawn(argv, "tansu.log", signal.SIGTERM, env=env)
            if self._wait_ready(self._tansu, "tansu", partial(kafka_answers, port), "tansu.log"):
                self.kafka_port = port
                return
            port = None
        raise StackError(f"tansu exited during startup:\n{self._tail('tansu.log')}")

    def _start_postgres(self, port: int | None = None) -> None:
        """Initialise the cluster if needed, start postgres and create the `goldenhour` database."""
        pgdata = self._data() / "postgres"
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
            clear_stale_pid(pgdata)
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
        uid, gid = self._run_as["user"], self._run_as["group"]
        if self._given_dir is None:
            os.chown(self._data(), uid, gid)
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
                terminate(self._tansu, [signal.SIGKILL], 5.0)
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
                terminate(self._postgres, [signal.SIGINT, signal.SIGQUIT, signal.SIGKILL], 15.0)
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
                terminate(pg, [signal.SIGINT, signal.SIGQUIT, signal.SIGKILL], 15.0)
            if tansu is not None:
                terminate(tansu, [signal.SIGTERM, signal.SIGKILL], 5.0)
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
