"""The duty manager's board: every live alert a user may see, and the feed that keeps it live."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, field_validator

from goldenhour.contracts.alert_kinds import LABELS, is_renotify_key, policy_for_alert, position_key
from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.infra.db import DbLimits, connect
from goldenhour.services import db
from goldenhour.services.alerts_api import visibility_args
from goldenhour.services.auth import Caller

log = structlog.get_logger(__name__)

CHANNEL = "goldenhour_board"
BOARD_LIMIT = 300


class BoardFilters(BaseModel):
    """The board's filters, from its query string; empty means all."""

    model_config = ConfigDict(extra="ignore")

    authority: str | None = None
    risk: Literal["high", "medium", "low"] | None = None
    acknowledged: Literal["yes", "no"] | None = None

    @field_validator("authority", "risk", "acknowledged", mode="before")
    @classmethod
    def _blank_is_all(cls, value: object) -> object:
        return value or None


@dataclass(frozen=True)
class Told:
    """One contact told about an alert, with the state of each channel's message."""

    contact: str
    channels: list[tuple[str, str]]


@dataclass(frozen=True)
class BoardRow:
    alert_id: uuid.UUID
    child_id: str
    kind: str
    kind_label: str
    status: str
    risk_level: str
    anchor_at: datetime
    last_seen_location: str | None
    local_authority: str
    care_home: str | None
    step: str
    next_due_at: datetime | None
    told: list[Told] = field(default_factory=list)
    acknowledged_by: list[str] = field(default_factory=list)


def contact_label(config: GoldenHourConfig, contact_id: str) -> str:
    """A contact as a duty manager knows it: organisation and role."""
    found = config.contact(contact_id)
    if found is None:
        return contact_id
    org, contact = found
    return f"{org.name or org.code} {contact.role.replace('_', ' ')}"


def ack_label(config: GoldenHourConfig, user_id: str | None, contact_id: str | None) -> str:
    if user_id:
        found = config.user(user_id)
        if found:
            return f"{found[1].name or user_id} ({found[0].name or found[0].code})"
        return user_id
    return contact_label(config, contact_id or "?")


def step_label(config: GoldenHourConfig, kind: str, risk: str, fired: list[str]) -> str:
    """ "Step 2 of 4" for the latest policy step fired; re-notifications are counted apart."""
    policy = policy_for_alert(config, kind, risk)
    total = len(policy.steps)
    # Steps are recorded by their stable keys; older alerts recorded them by position.
    position = {position_key(i): i for i in range(total)}
    position |= {s.key: i for i, s in enumerate(policy.steps)}
    steps = sorted(position[k] for k in fired if k in position)
    rounds = sum(1 for k in fired if is_renotify_key(k))
    if not steps:
        return f"waiting for step 1 of {total}"
    label = f"step {steps[-1] + 1} of {total}"
    return label + (f", reminder {rounds}" if rounds else "")


async def board_rows(
    pool: asyncpg.Pool, config: GoldenHourConfig, caller: Caller, filters: BoardFilters
) -> list[BoardRow]:
    """The live alerts `caller` may see, newest first, with who was told and who acknowledged."""
    acked = {"yes": True, "no": False}.get(filters.acknowledged or "")
    async with pool.acquire() as conn:
        alerts = await conn.fetch(
            db.BOARD_ALERTS,
            *visibility_args(config, caller),
            filters.authority,
            filters.risk,
            acked,
            BOARD_LIMIT,
        )
        ids = [a["alert_id"] for a in alerts]
        notes = await conn.fetch(db.BOARD_NOTIFICATIONS, ids)
        steps = await conn.fetch(db.BOARD_FIRED_STEPS, ids)
        acks = await conn.fetch(db.BOARD_ACKNOWLEDGEMENTS, ids)
    told: dict[uuid.UUID, dict[str, dict[str, str]]] = {}
    for n in notes:  # the latest message per contact and channel wins
        told.setdefault(n["alert_id"], {}).setdefault(n["contact_id"], {})[n["channel"]] = n[
            "status"
        ]
    fired: dict[uuid.UUID, list[str]] = {}
    for s in steps:
        fired.setdefault(s["alert_id"], []).append(s["step_key"])
    acknowledged: dict[uuid.UUID, list[str]] = {}
    for a in acks:
        acknowledged.setdefault(a["alert_id"], []).append(
            ack_label(config, a["user_id"], a["contact_id"])
        )
    return [
        BoardRow(
            alert_id=a["alert_id"],
            child_id=a["child_id"],
            kind=a["kind"],
            kind_label=LABELS.get(a["kind"], a["kind"]),
            status=a["status"],
            risk_level=a["risk_level"],
            anchor_at=a["anchor_at"],
            last_seen_location=a["last_seen_location"],
            local_authority=a["local_authority"],
            care_home=a["care_home"],
            step=step_label(config, a["kind"], a["risk_level"], fired.get(a["alert_id"], [])),
            next_due_at=a["next_due_at"],
            told=[
                Told(contact_label(config, c), sorted(ch.items()))
                for c, ch in told.get(a["alert_id"], {}).items()
            ],
            acknowledged_by=acknowledged.get(a["alert_id"], []),
        )
        for a in alerts
    ]


class BoardFeed:
    """One LISTEN connection per API process, fanned out to every open board.

    Postgres announces the id of each alert that changed (a trigger on alerts, notifications
    and acknowledgements); each subscriber gets its own queue and decides what it may see.
    The process listens only while a board is open (and a while after the last one closed, so
    a reload does not reconnect): an announcement nobody listens for costs Postgres and this
    process nothing more than its queue entry.
    """

    def __init__(self, dsn: str, linger_s: float = 60.0, limits: DbLimits | None = None) -> None:
        self.dsn = dsn
        self.limits = limits
        self.linger_s = linger_s
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.listening = False
        self._wanted = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="board-feed")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _publish(self, *args: object) -> None:
        payload = str(args[-1])
        for queue in list(self.subscribers):
            if queue.qsize() < 1000:  # a stalled browser must not hold memory
                queue.put_nowait(payload)

    async def _listen(self) -> None:
        """While boards are open, listen; a lost connection is made again, and boards told to
        reload (as is a board that opened before the listening began)."""
        while True:
            await self._wanted.wait()
            try:
                conn = await connect(self.dsn, self.limits)
                try:
                    await conn.add_listener(CHANNEL, self._publish)
                    self.listening = True
                    self._publish("*")  # anything may have changed while nobody listened
                    await self._until_unwatched(conn)
                finally:
                    self.listening = False
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the feed retries; boards keep their clocks
                log.warning("board_feed.lost", error=repr(exc))
                await asyncio.sleep(1.0)

    async def _until_unwatched(self, conn: asyncpg.Connection) -> None:
        """Return once no board has been open for linger_s, or the connection is lost."""
        loop = asyncio.get_running_loop()
        unwatched_since: float | None = None
        while not conn.is_closed():
            await asyncio.sleep(min(1.0, self.linger_s))
            if self.subscribers:
                unwatched_since = None
            elif unwatched_since is None:
                unwatched_since = loop.time()
            elif loop.time() - unwatched_since >= self.linger_s:
                self._wanted.clear()
                return

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[str]]:
        """A queue of changed alert ids, for as long as the caller holds it."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers.add(queue)
        self._wanted.set()
        try:
            yield queue
        finally:
            self.subscribers.discard(queue)
