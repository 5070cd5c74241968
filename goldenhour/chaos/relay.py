"""The outbox relay's leadership as every API replica reports it on /metrics, sampled through a
run: never two active at once, and one active again soon after a fault that stops an API.

A round asks each API in turn and then the first again. Two relays at once is judged only when
the first said active both before and after another said so: a handover between two answers is
not an overlap, an overlap bracketed like that is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from goldenhour.chaos import faults
from goldenhour.chaos.background import Background, metrics_page
from goldenhour.chaos.faults import Window

GAUGE = "goldenhour_outbox_relay_active"
SAMPLE_EVERY_S = 1.0
ASK_TIMEOUT_S = 2.0
# After a fault that stopped an API (or the database its lock lives in) has ended, one relay
# is active again within this long: a standby asks for the lock every second.
BACK_WITHIN_S = 30.0


@dataclass(frozen=True)
class Round:
    """One round of answers: each API's gauge in turn, then the first's again (None: no
    answer)."""

    at: float
    values: tuple[float | None, ...]

    @property
    def active(self) -> int | None:
        """How many relays were active, when every API answered; else None."""
        first = self.values[:-1]
        if any(v is None for v in first):
            return None
        return sum(1 for v in first if v == 1)

    @property
    def two_at_once(self) -> bool:
        """The first API active before and after another said it was active too."""
        first, *others, again = self.values
        return first == 1 and again == 1 and any(v == 1 for v in others)


def gauge(text: str) -> float | None:
    """The relay gauge's value in a /metrics page; None if absent."""
    for family in text_string_to_metric_families(text):
        if family.name == GAUGE:
            for sample in family.samples:
                return float(sample.value)
    return None


class RelaySampler(Background):
    """Samples every API's relay gauge each second, for the whole run."""

    def __init__(self, urls: list[str], token: str) -> None:
        self.urls = urls
        self.token = token
        self.rounds: list[Round] = []

    async def _ask(self, client: httpx.AsyncClient, url: str) -> float | None:
        page = await metrics_page(client, url)
        return gauge(page) if page is not None else None

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=ASK_TIMEOUT_S, headers=headers) as client:
            while True:
                at = time.time()
                values = [await self._ask(client, url) for url in [*self.urls, self.urls[0]]]
                self.rounds.append(Round(at, tuple(values)))
                await asyncio.sleep(SAMPLE_EVERY_S)


def stops_an_api(window: Window) -> bool:
    """A fault after which the relay may have to move: an API killed, the database (holding
    the leadership lock) restarted."""
    if window.kind == faults.POSTGRES_RESTART:
        return True
    return window.kind == faults.KILL_PART and window.target.startswith("api-")


def at_once(rounds: Iterable[Round]) -> list[Round]:
    """The rounds that caught two relays active at once."""
    return [r for r in rounds if r.two_at_once]


def back_after(rounds: list[Round], window: Window) -> float | None:
    """Seconds from `window`'s end until a round saw exactly one relay active; None: never."""
    for r in rounds:
        if r.at >= window.end and r.active == 1:
            return round(r.at - window.end, 2)
    return None


def not_back(
    rounds: list[Round], windows: Iterable[Window], within_s: float = BACK_WITHIN_S
) -> list[str]:
    """The faults that stopped an API after which no round saw one relay active within
    `within_s`."""
    out = []
    for w in windows:
        if stops_an_api(w):
            back = back_after(rounds, w)
            if back is None or back > within_s:
                out.append(w.label)
    return out


def counts(rounds: Iterable[Round]) -> dict[str, int]:
    """Rounds by how many relays were active; `incomplete` when an API did not answer."""
    out = {"0": 0, "1": 0, "2": 0, "incomplete": 0}
    for r in rounds:
        out["incomplete" if r.active is None else str(min(r.active, 2))] += 1
    return out
