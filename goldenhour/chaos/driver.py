"""The workload: children identified, placed, checked in, reported absent, acknowledged, found.

Everything goes through the HTTP API as a real client would send it. A request that fails at
the transport or with a 5xx is sent again with the same event id, so a retry is one report;
every event answered 202 (or 200 "duplicate") is in the ledger, the harness's own record of what
the system promised to keep.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import structlog

from goldenhour.chaos.background import Background
from goldenhour.dev.london import IDENTIFIED, event, placement
from goldenhour.dev.waiting import eventually

log = structlog.get_logger(__name__)

LA_USER = "lbh-dm1"
HOME_USER = "oak-staff1"
SUBSCRIBER = "lbi-dm1"
# How long one request is retried before the harness gives it up as unanswered.
REQUEST_DEADLINE_S = 120.0
REQUEST_TIMEOUT_S = 5.0
# A late report's last sighting, in policy minutes before the report (scenario 2's 40 minutes:
# the 0, 15 and 30 minute steps are due at once).
LATE_MINUTES = 40
ALERT_POLL_S = 1.0
# The share of children placed at medium risk, whose open alerts a risk change can raise.
MEDIUM_SHARE = 0.25


@dataclass(frozen=True)
class ChildPlan:
    """What happens to one child, and when, in seconds from the workload's start."""

    child_id: str
    start_at: float
    checkins: int
    late: bool
    ack_after: float | None  # seconds after the absence; None: nobody acknowledges
    located_after: float | None  # seconds after the absence; None: still missing at the end
    risk: str = "high"


def plan_children(seed: int, n: int, window_s: float, prefix: str = "LBH-CX") -> list[ChildPlan]:
    """The seeded plans of `n` children, starting over the first part of `window_s`."""
    rng = random.Random(f"children:{seed}")
    # A stream of its own, so the rest of each story is what it was before risks were mixed.
    risks = random.Random(f"risks:{seed}")
    plans = []
    span = max(1.0, window_s - 30.0)  # the last ones still reach their return in the window
    for i in range(n):
        plans.append(
            ChildPlan(
                child_id=f"{prefix}-{i:04d}",
                start_at=round(rng.uniform(0.0, span), 2),
                checkins=rng.randint(1, 3),
                late=rng.random() < 0.3,
                ack_after=round(rng.uniform(1.0, 5.0), 2) if rng.random() < 0.5 else None,
                located_after=round(rng.uniform(4.0, 20.0), 2) if rng.random() < 0.85 else None,
                risk="medium" if risks.random() < MEDIUM_SHARE else "high",
            )
        )
    return sorted(plans, key=lambda p: p.start_at)


@dataclass(frozen=True)
class Accepted:
    """An event the API accepted (202, or 200 for a repeat of one it had accepted)."""

    event_id: str
    type: str
    child_id: str
    at: float  # wall clock of the answer


@dataclass
class Ledger:
    """What the API answered, as the clients saw it."""

    accepted: dict[str, Accepted] = field(default_factory=dict)
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (what, status, text)
    unanswered: list[str] = field(default_factory=list)
    retries: int = 0
    acks: int = 0
    absences: dict[str, float] = field(default_factory=dict)  # child -> accepted at
    located: dict[str, float] = field(default_factory=dict)  # child -> accepted at
    risk: dict[str, str] = field(default_factory=dict)  # child -> the level it was placed at
    # child -> the event id of its first absence report, of its return
    absence_events: dict[str, str] = field(default_factory=dict)
    located_events: dict[str, str] = field(default_factory=dict)


class Api:
    """Clients of every API replica; a retry goes to the next one."""

    def __init__(self, urls: list[str], keys: dict[str, str], ledger: Ledger) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self._clients = [
            httpx.AsyncClient(base_url=f"{u}/api/v1", timeout=REQUEST_TIMEOUT_S, limits=limits)
            for u in urls
        ]
        self._next = itertools.cycle(range(len(urls)))
        self.keys = keys
        self.ledger = ledger

    async def close(self) -> None:
        for c in self._clients:
            await c.aclose()

    async def request(
        self, method: str, path: str, user: str, body: dict | None = None, what: str = ""
    ) -> httpx.Response | None:
        """Send until an answer below 500 arrives; None if none came within the deadline."""
        headers = {"Authorization": f"Bearer {self.keys[user]}"}
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        for attempt in itertools.count():
            client = self._clients[next(self._next)]
            try:
                r = await client.request(method, path, json=body, headers=headers)
                if r.status_code < 500:
                    return r
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.ledger.unanswered.append(what or path)
                return None
            self.ledger.retries += 1
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
        return None  # pragma: no cover - the loop only ends by returning

    async def get_once(self, path: str, user: str) -> httpx.Response:
        """One GET from the first replica, not retried (a poller asks again anyway)."""
        headers = {"Authorization": f"Bearer {self.keys[user]}"}
        return await self._clients[0].get(path, headers=headers)

    async def submit(self, user: str, envelope: dict) -> bool:
        """POST one event; True when the API accepted it (now or on an earlier try)."""
        what = f"{envelope['type']} {envelope['child_id']}"
        r = await self.request("POST", "/events", user, envelope, what)
        if r is None:
            return False
        if r.status_code in (200, 202):
            self.ledger.accepted[envelope["event_id"]] = Accepted(
                envelope["event_id"], envelope["type"], envelope["child_id"], time.time()
            )
            return True
        self.ledger.refused.append((what, r.status_code, r.text[:200]))
        return False


class AlertIds(Background):
    """The live alert of each child, as the duty manager's alert list shows it."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.by_child: dict[str, str] = {}

    async def _run(self) -> None:
        while True:
            try:
                r = await self.api.get_once("/alerts?status=live&limit=1000", LA_USER)
                if r.status_code == 200:
                    for a in r.json():
                        self.by_child.setdefault(a["child_id"], a["alert_id"])
            except Exception:  # the list is a convenience; the API may be down for a while
                pass
            await asyncio.sleep(ALERT_POLL_S)

    async def wait(self, child_id: str, timeout: float) -> str | None:
        """The alert id of `child_id` once seen; None if not seen within `timeout` seconds."""
        try:
            return await eventually(
                lambda: self.by_child.get(child_id), timeout, f"the alert of {child_id}", every=0.5
            )
        except AssertionError:
            return None


def _now() -> datetime:
    return datetime.now(UTC)


async def place(api: Api, child_id: str, risk: str = "high") -> bool:
    """Identify and place one child at Oak House, at `risk`."""
    api.ledger.risk[child_id] = risk
    identified = {**IDENTIFIED, "risk_level": risk}
    if not await api.submit(LA_USER, event("child.identified", child_id, identified)):
        return False
    placed = placement(child_id)
    placed["risk"] = {**placed["risk"], "level": risk}
    return await api.submit(LA_USER, event("placement.started", child_id, placed))


async def raise_risk(api: Api, child_id: str) -> str | None:
    """The care home logs a new phone: the child's risk goes one level up. The event id once
    accepted."""
    signal = {"kind": "new_phone", "detail": "New phone, would not say where from"}
    envelope = event("risk.signal", child_id, signal)
    return envelope["event_id"] if await api.submit(HOME_USER, envelope) else None


def missing_at_risk(ledger: Ledger) -> list[str]:
    """Medium-risk children reported absent and not yet located, oldest report first."""
    return [
        c
        for c, _ in sorted(ledger.absences.items(), key=lambda kv: kv[1])
        if c not in ledger.located and ledger.risk.get(c) == "medium"
    ]


async def report_absence(api: Api, child_id: str, late_by_s: float = 0.0) -> str | None:
    """The care home reports the child absent, last seen `late_by_s` seconds ago; the event id
    once accepted."""
    data = {
        "last_seen_at": (_now() - timedelta(seconds=late_by_s)).isoformat(),
        "last_seen_location": "Mare Street bus stop, Hackney",
        "circumstances": "Did not return from college",
        "placement_id": f"{child_id}-P1",
    }
    envelope = event("absence.reported", child_id, data)
    if await api.submit(HOME_USER, envelope):
        api.ledger.absences.setdefault(child_id, time.time())
        api.ledger.absence_events.setdefault(child_id, envelope["event_id"])
        return envelope["event_id"]
    return None


async def run_child(api: Api, alerts: AlertIds, plan: ChildPlan, scale: float, t0: float) -> None:
    """One child's story, from identification to return."""
    await asyncio.sleep(max(0.0, t0 + plan.start_at - time.monotonic()))
    if not await place(api, plan.child_id, plan.risk):
        return
    for _ in range(plan.checkins):
        await asyncio.sleep(random.uniform(0.3, 1.5))
        seen = {"placement_id": f"{plan.child_id}-P1", "seen_at": _now().isoformat()}
        await api.submit(HOME_USER, event("checkin.recorded", plan.child_id, seen))
    late_by = LATE_MINUTES * scale if plan.late else random.uniform(0.0, 1.0)
    if await report_absence(api, plan.child_id, late_by) is None:
        return
    reported = time.monotonic()
    if plan.ack_after is not None:
        alert_id = await alerts.wait(plan.child_id, timeout=60.0)
        await asyncio.sleep(max(0.0, reported + plan.ack_after - time.monotonic()))
        if alert_id is not None:
            r = await api.request("POST", f"/alerts/{alert_id}/ack", LA_USER, what="ack")
            if r is not None and r.status_code == 200:
                api.ledger.acks += 1
            elif r is not None:
                api.ledger.refused.append((f"ack {plan.child_id}", r.status_code, r.text[:200]))
    if plan.located_after is not None:
        await asyncio.sleep(max(0.0, reported + plan.located_after - time.monotonic()))
        found = {"located_at": _now().isoformat(), "location": "Oak House", "status": "returned"}
        envelope = event("child.located", plan.child_id, found)
        if await api.submit(HOME_USER, envelope):
            api.ledger.located.setdefault(plan.child_id, time.time())
            api.ledger.located_events.setdefault(plan.child_id, envelope["event_id"])


async def subscribe_neighbour(api: Api) -> None:
    """Islington's duty manager takes Hackney's shared alerts by SMS."""
    body = {
        "source_authorities": ["LBH"],
        "deliver": {"contacts": ["lbi-duty"], "channels": ["sms"]},
    }
    r = await api.request("POST", "/subscriptions", SUBSCRIBER, body, what="subscribe")
    if r is None or r.status_code != 201:
        raise RuntimeError(f"subscription refused: {None if r is None else r.text}")
