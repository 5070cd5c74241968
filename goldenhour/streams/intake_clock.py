"""The `golden_hour_clock` agent: consumes intake events (keyed by child_id, so one child's
events arrive in order), applies each to Postgres in one transaction and announces what it did."""

from __future__ import annotations

import asyncio
import contextlib

import faust
import structlog

from goldenhour.infra import tracing
from goldenhour.streams.announcer import Announcer
from goldenhour.streams.intake import Incoming, IntakeApplier

log = structlog.get_logger(__name__)

INTAKE_BATCH = 500
INTAKE_BATCH_WAIT_S = 0.002
# How long a stopping worker keeps applying the batch it took.
STOP_GRACE_S = 5.0


def add_intake_clock(
    app: faust.App, intake: faust.TopicT, applier: IntakeApplier, announcer: Announcer
) -> None:
    """Register the agent on `app`."""

    @app.agent(intake)
    async def golden_hour_clock(stream: faust.StreamT) -> None:
        # Events are taken in small batches and different children's run side by side: the
        # worker mostly waits on Postgres round trips, and only each child's order matters.
        # The batch's offsets are acknowledged after this body, whatever happens in it: so
        # nothing may escape it, and each record is applied or dead-lettered before it ends.
        async for events in stream.take_events(INTAKE_BATCH, within=INTAKE_BATCH_WAIT_S):
            batch = [
                Incoming(
                    raw=e.message.value or b"",
                    key=e.message.key,
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    correlation_id=tracing.from_kafka_headers(e.message.headers),
                )
                for e in events
            ]
            work = asyncio.ensure_future(applier.apply_batch(batch))
            try:
                outcome = await asyncio.shield(work)
            except asyncio.CancelledError:
                # Finish what was taken before its offsets are acknowledged, within a bound: an
                # event left unapplied is in Postgres, where the reconciler finds it.
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(work, STOP_GRACE_S)
                raise
            except Exception as exc:  # apply_batch sorts every failure itself
                log.exception("intake.batch_failed", error=repr(exc))
                continue
            await announcer.announce_safely(outcome)
