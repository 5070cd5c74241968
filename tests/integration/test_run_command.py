"""`goldenhour run` as a user leaves it running: one command starts the embedded stack and every
part, restarts what dies, keeps its data in a folder across stops, and Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from goldenhour.dev.devsystem import TWILIO_FROM, TWILIO_SID
from goldenhour.dev.london import IDENTIFIED, directory, event, placement
from goldenhour.dev.servers import free_port
from goldenhour.dev.smtp_local import LocalSmtp
from goldenhour.dev.twilio_local import LocalTwilio
from goldenhour.dev.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
CONTROL_ROOM = "+447700900010"  # mps-cr, told at the first step of every high-risk absence
READY = "Golden Hour is ready"


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


def _start_time(pid: int) -> str | None:
    """When the process started (in clock ticks since boot): a PID and this name one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return []
    return raw.rstrip("\0").split("\0")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder whose parent every user may traverse: as root, PostgreSQL runs as nobody."""
    parent = Path(tempfile.mkdtemp(prefix="goldenhour-run-test-"))
    parent.chmod(0o755)
    yield parent / "data"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
async def providers() -> AsyncIterator[tuple[LocalTwilio, LocalSmtp]]:
    """A local Twilio and SMTP server, so the dispatcher's messages can be counted."""
    twilio = LocalTwilio(TWILIO_SID, uuid.uuid4().hex)
    await twilio.start()
    smtp = LocalSmtp()
    smtp.start()
    yield twilio, smtp
    await twilio.stop()
    smtp.stop()


class Run:
    """A real `goldenhour run` process over a data folder; its output goes to a file."""

    def __init__(self, data_dir: Path, env: dict[str, str], keys: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.keys = keys
        self.port = int(env["GOLDENHOUR_API_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["GOLDENHOUR_CONFIG"]).with_name(f"run-{uuid.uuid4().hex[:6]}.log")
        self.seen: dict[int, str | None] = {}  # every descendant seen, with its start time

    def start(self) -> Run:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "goldenhour", "run"],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def descendants(self) -> set[int]:
        assert self.proc is not None
        found = _children(self.proc.pid)
        for pid in found:
            self.seen.setdefault(pid, _start_time(pid))
        return found

    def part(self, name: str) -> int | None:
        """The PID of the running part (`api`, `streams`, `dispatcher`)."""
        for pid in self.descendants():
            argv = _cmdline(pid)
            if argv[-2:] == ["goldenhour", name] and _running(pid):
                return pid
        return None

    def server(self, name: str) -> int | None:
        """The PID of the embedded `tansu` or `postgres` (the postmaster, not its workers)."""
        assert self.proc is not None
        for pid in _children(self.proc.pid):
            argv = _cmdline(pid)
            if argv and Path(argv[0]).name == name and _running(pid):
                return pid
        return None

    async def ready(self, timeout: float = 120.0, count: int = 1) -> None:
        """Until `run` has printed its ready line `count` times."""
        await eventually(
            lambda: self._exited_early() or self.output.count(READY) >= count,
            timeout,
            f"`goldenhour run` to say it is ready:\n{self.output[-3000:]}",
        )

    def _exited_early(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            # pytest.fail, not an AssertionError: `eventually` would take that for "not yet".
            pytest.fail(f"run exited {self.proc.returncode}:\n{self.output[-3000:]}")
        return False

    def client(self, user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}/api/v1",
            timeout=10.0,
            headers={"Authorization": f"Bearer {self.keys[user]}"},
        )

    async def post(self, user: str, body: dict, timeout: float = 60.0) -> None:
        """Submit an event until it is accepted (the API may be restarting)."""
        async with self.client(user) as c:

            async def accepted() -> bool:
                r = await c.post("/events", json=body)
                assert r.status_code in (200, 202), f"{r.status_code} {r.text}"
                return True

            await eventually(accepted, timeout, "the event accepted", every=0.2, retry_errors=True)

    async def alerts(self) -> list[dict]:
        async with self.client("lbh-dm1") as c:
            r = await c.get("/alerts", params={"status": "all"})
            assert r.status_code == 200, r.text
            return r.json()

    async def absence_opens_alert(self, twilio: LocalTwilio, timeout: float = 60.0) -> str:
        """A new child placed and reported absent: its alert opens and the control room is
        texted. Returns the child's id."""
        child = f"LBH-RUN-{uuid.uuid4().hex[:8]}"
        await self.post("lbh-dm1", event("child.identified", child, IDENTIFIED))
        await self.post("lbh-dm1", event("placement.started", child, placement(child)))
        absence = {
            "last_seen_at": datetime.now(UTC).isoformat(),
            "placement_id": f"{child}-P1",
        }
        await self.post("oak-staff1", event("absence.reported", child, absence))
        alerts: list[dict] = []

        async def opened() -> bool:
            alerts[:] = await self.alerts()
            return any(a["child_id"] == child for a in alerts)

        try:
            await eventually(opened, timeout, f"an alert for {child}", every=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.output[-3000:]}") from None
        await twilio.wait_for(lambda m: m.to == CONTROL_ROOM and child in m.body, timeout=timeout)
        return child

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C, and its exit code."""
        assert self.proc is not None
        self.descendants()
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        """Whatever happened: stop it, and any process it started that outlived it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.descendants()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid, started in self.seen.items():
            # Only a process we saw: its PID may have been reused since.
            if _running(pid) and started is not None and _start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def start_run(
    data_dir: Path, providers: tuple[LocalTwilio, LocalSmtp], tmp_path: Path
) -> AsyncIterator[Callable[..., Run]]:
    """Start `goldenhour run` processes over one data folder and one config; all are stopped."""
    twilio, smtp = providers
    config, keys = directory()
    config_path = tmp_path / "goldenhour.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOLDENHOUR_KAFKA_BOOTSTRAP", "GOLDENHOUR_DATABASE_URL")
    }
    port = free_port()
    env.update(
        GOLDENHOUR_CONFIG=str(config_path),
        GOLDENHOUR_DATA_DIR=str(data_dir),
        GOLDENHOUR_API_PORT=str(port),
        GOLDENHOUR_PUBLIC_URL=f"http://127.0.0.1:{port}",
        GOLDENHOUR_KAFKA_SESSION_TIMEOUT_S="2",
        GOLDENHOUR_LOG_LEVEL="warning",
        TWILIO_ACCOUNT_SID=TWILIO_SID,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM_NUMBER=TWILIO_FROM,
        TWILIO_API_BASE_URL=twilio.base_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_TLS="off",
    )
    runs: list[Run] = []

    def start(**overrides: str) -> Run:
        run = Run(data_dir, {**env, **overrides}, keys)
        runs.append(run)
        return run.start()

    yield start
    for run in runs:
        await asyncio.to_thread(run.cleanup)


async def test_run_starts_everything_and_stops_everything(start_run) -> None:
    run = start_run()
    await run.ready()
    assert await run.alerts() == []
    started = run.descendants()
    assert len(started) >= 5  # api, streams, dispatcher, broker, database (and its workers)
    assert await asyncio.to_thread(run.interrupt) == 0
    await eventually(lambda: not any(_running(p) for p in started), 10, "every child to stop")
    output = run.output
    assert "embedded Kafka" in output
    assert f"Golden Hour data in {run.data_dir}" in output
    assert output.count(READY) == 1, output
    assert f"{READY}: http://127.0.0.1:{run.port} (data in {run.data_dir})" in output
    # The data folder stays: the next run starts from it.
    assert (run.data_dir / "postgres" / "PG_VERSION").exists()


async def test_a_killed_part_is_restarted_and_the_system_still_works(start_run, providers) -> None:
    twilio, _ = providers
    run = start_run()
    await run.ready()
    streams = run.part("streams")
    assert streams is not None
    os.kill(streams, signal.SIGKILL)
    restarted = await eventually(
        lambda: (pid := run.part("streams")) not in (None, streams) and pid,
        60,
        "the streams part to be started again",
    )
    assert restarted != streams
    assert run.proc is not None and run.proc.poll() is None  # `run` itself carries on
    await run.absence_opens_alert(twilio)
    assert '"part.exited"' in run.output and '"part": "streams"' in run.output
    assert '"exit_code": -9' in run.output


async def test_a_killed_database_is_restarted_on_its_port(start_run, providers) -> None:
    twilio, _ = providers
    run = start_run()
    await run.ready()
    await run.absence_opens_alert(twilio)
    postgres = run.server("postgres")
    assert postgres is not None
    os.kill(postgres, signal.SIGKILL)
    again = await eventually(
        lambda: (pid := run.server("postgres")) not in (None, postgres) and pid,
        60,
        "the database to be started again",
    )
    port = run.output.split("PostgreSQL postgresql://goldenhour@127.0.0.1:", 1)[1].split("/")[0]
    assert f"-p {port}" in " ".join(_cmdline(int(again)))  # same port: the parts' URL holds
    await run.absence_opens_alert(twilio, timeout=90)
    assert len(await run.alerts()) == 2  # nothing committed before the crash was lost


async def test_stopping_and_starting_keeps_the_alerts(start_run, providers) -> None:
    twilio, _ = providers
    first = start_run()
    await first.ready()
    child = await first.absence_opens_alert(twilio)
    # A second `run` on the same folder is refused at once, and says why.
    other = start_run(GOLDENHOUR_API_PORT=str(free_port()))
    assert await asyncio.to_thread(other.proc.wait, 60) == 1
    assert "another `goldenhour run`" in other.output and str(first.data_dir) in other.output
    assert await asyncio.to_thread(first.interrupt) == 0

    second = start_run()
    await second.ready()
    assert [a["child_id"] for a in await second.alerts()] == [child]
    # A crash of `run` itself: its children die with it, but not at once. Started again straight
    # away, the next run waits for the old database to let go of the folder, and restarts the
    # API until the old one has freed its port.
    assert second.proc is not None
    second.descendants()
    second.proc.kill()
    second.proc.wait()
    third = start_run()
    await eventually(lambda: not any(_running(p) for p in second.seen), 60, "its children to die")
    await third.ready()
    assert [a["child_id"] for a in await third.alerts()] == [child]
    await third.absence_opens_alert(twilio)
    assert len(await third.alerts()) == 2


async def test_a_part_that_cannot_start_makes_run_give_up(start_run) -> None:
    with socket.socket() as taken:  # the API's port is taken: the API exits at every start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = start_run(GOLDENHOUR_API_PORT=str(taken.getsockname()[1]))
        assert run.proc is not None
        code = await asyncio.to_thread(run.proc.wait, 240)
    assert code == 1, run.output
    line = [ln for ln in run.output.splitlines() if "giving up" in ln]
    assert len(line) == 1 and "the api part exited" in line[0], run.output
    assert run.output.count('"part.exited"') >= 5  # each restart was logged with its delay
    assert '"restart_in_s"' in run.output


async def test_a_bad_config_fails_at_once_with_the_entry_named(start_run, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    config, _ = directory()
    config["organisations"].append(
        {
            "code": "HOE",
            "kind": "immigration_enforcement",
            "contacts": [{"id": "hoe", "role": "duty", "phone": "+447700900999", "email": "a@b.c"}],
        }
    )
    bad.write_text(yaml.safe_dump(config))
    run = start_run(GOLDENHOUR_CONFIG=str(bad))
    assert run.proc is not None
    assert await asyncio.to_thread(run.proc.wait, 60) != 0
    assert "organisations[6] (HOE)" in run.output and "immigration_enforcement" in run.output
    assert not (run.data_dir / "postgres").exists()  # nothing was started


async def test_a_killed_broker_is_restarted_on_its_port(start_run, providers) -> None:
    twilio, _ = providers
    run = start_run()
    await run.ready()
    tansu = run.server("tansu")
    assert tansu is not None
    port = run.output.split("embedded Kafka 127.0.0.1:", 1)[1].split(",")[0]
    os.kill(tansu, signal.SIGKILL)
    again = await eventually(
        lambda: (pid := run.server("tansu")) not in (None, tansu) and pid,
        60,
        "the broker to be started again",
    )
    assert f"tcp://127.0.0.1:{port}" in " ".join(_cmdline(int(again)))
    # Its log is gone; the topics are made again and the parts carry on over it.
    await run.absence_opens_alert(twilio, timeout=90)
    assert '"server.exited"' in run.output and '"server": "tansu"' in run.output
