"""Telling Kafka what a committed transaction did. Postgres has every row already, so a send
lost here costs only latency: the dispatcher finds its messages by its own sweep."""

from __future__ import annotations

import asyncio

import faust
import structlog
from prometheus_client import Counter

from goldenhour.contracts.derived import NotificationRequested
from goldenhour.contracts.shared import SharedAlertPublished
from goldenhour.infra.backoff import delay
from goldenhour.infra.dead_letters import DeadLetter
from goldenhour.streams.outcome import Outcome

log = structlog.get_logger(__name__)

ANNOUNCE_FAILED = Counter(
    "goldenhour_streams_announce_failed_total", "Committed outcomes whose Kafka announce failed"
)

ANNOUNCE_ATTEMPTS = 3
SEND_TIMEOUT_S = 5.0
MAX_ANNOUNCING = 100


class Announcer:
    """Sends each derived event to its topic: messages to the dispatcher's, shared alerts to
    theirs, the rest to the alerts topic; and dead letters to theirs."""

    def __init__(
        self,
        alerts: faust.TopicT,
        notifications: faust.TopicT,
        shared: faust.TopicT,
        dead_letters: faust.TopicT,
    ) -> None:
        self.alerts = alerts
        self.notifications = notifications
        self.shared = shared
        self.dead_letters = dead_letters
        self._announcing: set[asyncio.Future] = set()

    async def announce(self, outcome: Outcome) -> None:
        """Tell Kafka what was committed; the dispatcher's sweep covers a send lost here."""
        for event in outcome.events:
            topic = (
                self.notifications
                if isinstance(event, NotificationRequested)
                else self.shared
                if isinstance(event, SharedAlertPublished)
                else self.alerts
            )
            await topic.send(key=event.child_id.encode(), value=event.model_dump_json().encode())

    async def announce_safely(self, outcome: Outcome) -> None:
        """Announce, trying again briefly; give up loudly rather than hold the stream, since
        Postgres has every row (the dispatcher finds its messages by its own sweep)."""
        if not outcome.events:
            return
        for attempt in range(1, ANNOUNCE_ATTEMPTS + 1):
            try:
                # faust's send waits for the broker's metadata for up to its request timeout
                # (many minutes) while the broker is away: bound it.
                await asyncio.wait_for(self.announce(outcome), SEND_TIMEOUT_S)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # bounded retries, then logged
                if attempt == ANNOUNCE_ATTEMPTS:
                    ANNOUNCE_FAILED.inc()
                    log.warning(
                        "announce.failed", events=len(outcome.events), error=repr(exc)[:300]
                    )
                    return
                await asyncio.sleep(delay(attempt, 0.2, 1.0))

    def announce_later(self, outcome: Outcome) -> None:
        """Announce without holding the clock: a broker fault must not delay the next claims."""
        if not outcome.events:
            return
        if len(self._announcing) >= MAX_ANNOUNCING:
            ANNOUNCE_FAILED.inc()  # the broker is away this long: the sweep finds the rows
            return
        task = asyncio.ensure_future(self.announce_safely(outcome))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def publish_dead(self, letter: DeadLetter) -> None:
        """The dead letter on its topic, with why in its headers."""
        headers = {
            "consumer": letter.consumer.encode(),
            "reason": letter.reason.encode(),
            "error": letter.error[:1000].encode(),
        }
        await self.dead_letters.send(key=letter.key, value=letter.raw, headers=headers)
