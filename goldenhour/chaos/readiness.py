"""Every API's /readyz sampled through a run, so the report can say whether health told the
truth while each fault lasted."""

from __future__ import annotations

import asyncio
import time

import httpx

from goldenhour.chaos.background import Background
from goldenhour.chaos.faults import Window
from goldenhour.infra.health import CHECK_TIMEOUT_S

READYZ_EVERY_S = 1.0


class Readiness(Background):
    """Samples every API's /readyz, so the report can say whether health told the truth."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.samples: list[tuple[float, str, int]] = []  # (at, url, status; 0 = no answer)

    async def _run(self) -> None:
        # Longer than the API's own bound on its checks, which then answers 503: a sampler that
        # gave up at the same moment would report a truthful 503 as no answer.
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S + 3.0) as client:
            while True:
                for url in self.urls:
                    at = time.time()
                    try:
                        status = (await client.get(f"{url}/readyz")).status_code
                    except Exception:  # no answer is itself the sample
                        status = 0
                    self.samples.append((at, url, status))
                await asyncio.sleep(READYZ_EVERY_S)

    def during(self, w: Window) -> str:
        """What /readyz said while a fault lasted (and 3 s after): '503 seen', 'no answer',
        or '200 only'."""
        seen = {s for at, _, s in self.samples if w.start <= at <= w.end + 3.0}
        if any(s >= 500 for s in seen):
            return "503 seen"
        if 0 in seen:
            return "no answer"
        return "200 only" if seen else "not sampled"
