"""`goldenhour run`'s data folder: where it is, held by one run at a time, the key signing email
links kept in it, and the parts' scratch space emptied at each start."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from pathlib import Path
from typing import IO

from goldenhour.dev.restarts import GiveUp
from goldenhour.infra.settings import Settings


def default_data_dir(settings: Settings) -> Path:
    """GOLDENHOUR_DATA_DIR, else the user's data directory; as root /var/lib/goldenhour, which
    PostgreSQL (run as `nobody`) can reach where root's home cannot."""
    if settings.data_dir is not None:
        return settings.data_dir.expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/goldenhour")
    from platformdirs import user_data_dir

    return Path(user_data_dir("goldenhour"))


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the folder for this run; a second `run` on it stops at once with the reason."""
    lock = open(data_dir / "run.lock", "a+")  # held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise GiveUp(f"another `goldenhour run` (PID {holder}) uses {data_dir}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def secret_key(data_dir: Path) -> str:
    """The key signing email links, kept with the data so links outlive a restart of `run`."""
    path = data_dir / "secret_key"
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key)
    return key


def fresh_scratch(data_dir: Path) -> Path:
    """The parts' temporary files (faust's tables): emptied at start, since a killed part
    leaves its folder behind."""
    scratch = data_dir / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    return scratch
