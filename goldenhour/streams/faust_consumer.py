"""Changes to the Kafka consumer faust makes for the streams worker, made once per process
before the app is built: a short fetch wait, a seek that skips nothing, and its lag exported."""

from __future__ import annotations

from collections.abc import Mapping

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from goldenhour.infra.metrics import CONSUMER_LAG

LAG_NAME = "streams"


def adjust_consumer(max_wait_ms: int) -> None:
    """A short fetch wait, and a seek that never skips records on an uncommitted partition."""
    _shorten_fetch_wait(max_wait_ms)
    _seek_uncommitted_to_start()


def _shorten_fetch_wait(max_wait_ms: int) -> None:
    """faust hard-codes a 1.5 s fetch wait for its consumer; the embedded broker holds a fetch
    for all of it, which would put up to 1.5 s on every hop. Set it on the consumer faust makes."""
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "_goldenhour", False):
        return

    def create_with_wait(self, transport):  # type: ignore[no-untyped-def]
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read by aiokafka's fetcher at start
        CONSUMER_LAG.track(LAG_NAME, lambda: faust_lag(self.app))
        return consumer

    create_with_wait._goldenhour = True  # type: ignore[attr-defined]
    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_with_wait


def faust_lag(app: faust.App) -> Mapping[tuple[str, int], int]:
    """Per partition held: the end of the log at the last fetch less the committed offset, as
    faust's monitor tracks both (no broker request, and safe to read from another thread)."""
    ends = dict(app.monitor.tp_end_offsets)
    committed = dict(app.monitor.tp_committed_offsets)
    lag: dict[tuple[str, int], int] = {}
    for tp in app.consumer.assignment():
        end = ends.get(tp)
        if end is not None:
            lag[(tp.topic, tp.partition)] = end - committed.get(tp, 0)
    return lag


async def seek_committed_or_start(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int | None]:
    """Seek every assigned partition to its committed offset, and one with none to its start.

    aiokafka seeks only partitions committed past 0 and leaves the others where fetching got
    to. faust drops the records it fetched when a rebalance begins and seeks back to the
    committed offsets, so on a partition never committed (a new group, or a broker that lost
    its log) those dropped records would never be read."""
    committed = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset]
    if uncommitted:
        await consumer.seek_to_beginning(*uncommitted)
    return committed


def _seek_uncommitted_to_start() -> None:
    """Have faust's consumer seek through `seek_committed_or_start`."""
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread.seek_to_committed, "_goldenhour", False):
        return

    async def seek_to_committed(self):  # type: ignore[no-untyped-def]
        return await self.call_thread(seek_committed_or_start, self._ensure_consumer())

    seek_to_committed._goldenhour = True  # type: ignore[attr-defined]
    thread.seek_to_committed = seek_to_committed
