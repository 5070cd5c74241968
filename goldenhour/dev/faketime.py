"""Run a process with its clock shifted, through Debian's libfaketime, to prove that nothing
the system promises depends on the clocks of its hosts agreeing."""

from __future__ import annotations

import glob

LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"


def library() -> str:
    """The path of libfaketime's shared object; `make test` installs the package."""
    found = sorted(glob.glob(LIBRARY_GLOB))
    if not found:
        raise RuntimeError(
            "libfaketime is not installed (Debian package libfaketime; `make test` installs it)"
        )
    return found[0]


def skewed(env: dict[str, str], seconds: float) -> dict[str, str]:
    """`env` for a process whose wall clock runs `seconds` ahead (negative: behind) of the host's.

    Only the wall clock moves: the monotonic clock, which asyncio's timers use, is left alone,
    as it is on a real host whose clock was set wrong. (With it left alone, libfaketime 0.9.10
    makes Python's time.sleep fail with EINVAL: a part must wait on events, as asyncio does.)"""
    return {
        **env,
        "LD_PRELOAD": library(),
        "FAKETIME": f"{seconds:+.0f}s",
        "DONT_FAKE_MONOTONIC": "1",
        # The library caches the offset; a fixed offset needs no re-reading.
        "FAKETIME_NO_CACHE": "0",
    }
