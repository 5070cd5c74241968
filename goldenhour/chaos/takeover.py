"""Which partitions each worker replica holds, sampled from its /metrics through a run; and
from it, per stop or kill of a replica, how soon the survivor held them all and the group was
whole again, and how late the timers due while the replica was down were decided.

A replica reports the lag of every partition it holds and has fetched from
(`goldenhour_consumer_lag_records{consumer, topic, partition}`): under load that is every
partition it holds, within a fetch of being given it. A replica down answers nothing, and is
taken to hold nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from goldenhour.chaos import faults
from goldenhour.chaos.background import Background, metrics_page
from goldenhour.chaos.evidence import Step
from goldenhour.chaos.faults import Window
from goldenhour.chaos.lateness import DueTimes

LAG = "goldenhour_consumer_lag_records"
SAMPLE_EVERY_S = 0.5
ASK_TIMEOUT_S = 2.0
# After a stop's window ends (the replica back and ready), its share may still be on its way.
AFTER_S = 10.0
# The faults whose takeover is measured: those that take a worker replica down.
TAKEN_DOWN = (faults.GRACEFUL_STOP, faults.KILL_PART)


@dataclass(frozen=True)
class Held:
    """One round over a part's replicas: the partitions of the shared topic each reported
    holding (None: it did not answer)."""

    at: float
    part: str
    replicas: Mapping[str, frozenset[int] | None]

    def covered(self) -> int:
        """How many distinct partitions some replica holds."""
        held: set[int] = set()
        for partitions in self.replicas.values():
            held |= partitions or frozenset()
        return len(held)


def held(text: str, topic: str) -> frozenset[int]:
    """The partitions of `topic` a /metrics page reports the lag of."""
    found = set()
    for family in text_string_to_metric_families(text):
        if family.name == LAG:
            for sample in family.samples:
                if sample.labels.get("topic") == topic:
                    found.add(int(sample.labels["partition"]))
    return frozenset(found)


class Assignments(Background):
    """Samples every worker replica's /metrics, part by part, through every fault."""

    def __init__(
        self,
        urls: Mapping[str, str],
        topics: Mapping[str, str],
        token: str,
    ) -> None:
        self.urls = urls  # replica (`streams-1` …) -> its health server's base URL
        self.topics = topics  # part -> the topic its replicas share
        self.token = token
        self.samples: list[Held] = []

    async def _ask(self, client: httpx.AsyncClient, url: str, topic: str) -> frozenset[int] | None:
        page = await metrics_page(client, url)
        return held(page, topic) if page is not None else None

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=ASK_TIMEOUT_S, headers=headers) as client:
            while True:
                for part, topic in self.topics.items():
                    mine = {n: u for n, u in self.urls.items() if n.rsplit("-", 1)[0] == part}
                    answers = await asyncio.gather(
                        *(self._ask(client, u, topic) for u in mine.values())
                    )
                    self.samples.append(
                        Held(time.time(), part, dict(zip(mine, answers, strict=True)))
                    )
                await asyncio.sleep(SAMPLE_EVERY_S)


@dataclass(frozen=True)
class Takeover:
    """One replica taken down: seconds from the stop until a survivor held every partition,
    and until the replica started again held its share beside it; None: not seen."""

    survivor_s: float | None
    whole_s: float | None


def takeover(samples: Iterable[Held], part: str, window: Window, partitions: int) -> Takeover:
    """The takeover of `part`'s partitions after `window` took its replica `window.target`
    down: the first round in which another replica held all `partitions`, and the first in
    which the replica, seen down and then answering again, held some and together they held
    all."""
    survivor = whole = None
    down = False  # the replica seen not answering: what it reports next, it reports started again
    for s in samples:
        if s.part != part or not window.start <= s.at <= window.end + AFTER_S:
            continue
        others = [h for name, h in s.replicas.items() if name != window.target]
        if survivor is None and any(h is not None and len(h) >= partitions for h in others):
            survivor = round(s.at - window.start, 2)
        mine = s.replicas.get(window.target)
        down = down or mine is None
        if whole is None and down and mine and s.covered() >= partitions:
            whole = round(s.at - window.start, 2)
    return Takeover(survivor, whole)


def part_of(window: Window) -> str | None:
    """The worker part a window took a replica of down (`streams`, `dispatcher`), else None."""
    if window.kind not in TAKEN_DOWN:
        return None
    part = window.target.rsplit("-", 1)[0]
    return part if part in faults.WORKER_PARTS else None


@dataclass(frozen=True)
class GapTimers:
    """The steps due while a replica was down: how many, and the worst lateness of their
    decision from when they were due (seconds)."""

    due: int
    worst_late_s: float


def gap_timers(steps: Iterable[Step], window: Window, due_times: DueTimes) -> GapTimers:
    """The decided steps that fell due within `window`, and how late the worst was decided."""
    lates = [
        s.decided_at - due for s in steps if window.start <= (due := due_times.of(s)) <= window.end
    ]
    return GapTimers(len(lates), round(max(lates, default=0.0), 2))
