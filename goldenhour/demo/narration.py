"""The demo's voice: time-stamped lines, headings and check lists, fitted to a terminal."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

WIDTH = 100
TZ = ZoneInfo("Europe/London")


def clip(text: str, width: int = WIDTH) -> str:
    """`text` on one line, cut with an ellipsis to `width`."""
    text = " ".join(text.splitlines())
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def clock(at: float | datetime | None = None) -> str:
    """Local wall-clock time with milliseconds, e.g. 21:40:00.000."""
    if at is None:
        at = time.time()
    moment = at if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)
    return moment.astimezone(TZ).strftime("%H:%M:%S.%f")[:-3]


def say(text: str = "", at: float | datetime | None = None, clipped: bool = False) -> None:
    """One narration line, stamped with the time, wrapped (or clipped) to the page width."""
    if not text:
        print(flush=True)
        return
    stamp = f"{clock(at)}  "
    if clipped:
        print(clip(stamp + text), flush=True)
        return
    lines = textwrap.wrap(text, WIDTH - len(stamp), break_on_hyphens=False) or [""]
    print(stamp + lines[0], flush=True)
    for line in lines[1:]:
        print(" " * len(stamp) + line, flush=True)


def heading(text: str) -> None:
    print(flush=True)
    print(text, flush=True)
    print("=" * min(len(text), WIDTH), flush=True)


def print_checks(checks: list[tuple[str, bool, str]]) -> None:
    for name, ok, detail in checks:
        text = f"  [{'ok' if ok else 'FAIL'}] {name}: {detail}"
        print(
            textwrap.fill(text, WIDTH, subsequent_indent=" " * 9, break_on_hyphens=False),
            flush=True,
        )
