"""The metrics several parts share, and the collectors read at scrape time.

Every process keeps prometheus_client's default registry, served on its /metrics. Gauges
counted from Postgres (alerts open, alerts past their last step, outbox rows waiting) are set
by the one active holder of a leadership and cleared or zeroed when it steps down, so rules
aggregate them with `max`: a standby never contributes a stale count.

Labels are bounded sets from the config or the code (alert kind, risk level, authority code,
channel, pool and consumer names, partitions): never a child, alert or message id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import asyncpg
import structlog
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

# Seconds from last seen to the golden hour's end, and past it a little.
GOLDEN_HOUR_BUCKETS = (
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    900.0, 1200.0, 1800.0, 2700.0, 3600.0,
)  # fmt: skip

FIRST_NOTIFICATION = Histogram(
    "goldenhour_alert_first_notification_seconds",
    "Last seen to the alert's first message handed to a provider, once per alert",
    ["kind", "authority"],
    buckets=GOLDEN_HOUR_BUCKETS,
)
FIRST_DELIVERY = Histogram(
    "goldenhour_alert_first_delivery_seconds",
    "Last seen to the alert's first message the provider reported delivered, once per alert",
    ["kind", "authority"],
    buckets=GOLDEN_HOUR_BUCKETS,
)
FIRST_ACKNOWLEDGEMENT = Histogram(
    "goldenhour_alert_first_acknowledgement_seconds",
    "Last seen to the alert's first acknowledgement, once per alert",
    ["kind", "authority"],
    buckets=GOLDEN_HOUR_BUCKETS,
)

NOTIFICATION_OUTCOMES = Counter(
    "goldenhour_notification_outcomes_total",
    "Message outcomes recorded: sent, delivered, retried, failed, cancelled",
    ["channel", "outcome"],
)

ALERTS_OPEN = Gauge(
    "goldenhour_alerts_open",
    "Unresolved alerts, as the active reconciler last counted (aggregate with max)",
    ["kind", "risk", "authority"],
)
ALERTS_PAST_LAST_STEP = Gauge(
    "goldenhour_alerts_unacknowledged_past_last_step",
    "Open alerts nobody acknowledged with no step left to fire, as the active reconciler last"
    " counted (aggregate with max)",
    ["kind", "authority"],
)

OUTBOX_LAG = Gauge(
    "goldenhour_outbox_relay_lag_seconds",
    "Age of the oldest unpublished outbox row, as the active relay last counted (0 elsewhere)",
)

TIMER_LATENESS = Histogram(
    "goldenhour_timer_lateness_seconds",
    "Database now minus the due time of each timer claimed and fired",
    ["what"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
CLAIM_BATCH = Histogram(
    "goldenhour_clock_claim_batch_size",
    "Due rows taken by one claim that found any",
    ["what"],
    buckets=(1, 2, 5, 10, 20, 50, 100),
)


@dataclass(frozen=True)
class AlertFacts:
    """What the golden-hour histograms are labelled with, and the value to observe."""

    kind: str
    authority: str
    seconds: float


def observe_first(histogram: Histogram, facts: Iterable[AlertFacts]) -> None:
    """Observe each alert's first (a negative span, a last-seen time ahead of it, counts 0)."""
    for f in facts:
        histogram.labels(f.kind, f.authority).observe(max(0.0, f.seconds))


# --- collectors read at scrape time ---------------------------------------------------------


class PoolCollector(Collector):
    """Connections of every live asyncpg pool of this process, by the name it was made with."""

    def __init__(self) -> None:
        # By id: an asyncpg pool takes no weak reference. A closed pool is dropped when next
        # collected, so tracking one holds it no longer than a scrape.
        self._pools: dict[int, tuple[asyncpg.Pool, str]] = {}
        self._lock = threading.Lock()

    def track(self, pool: asyncpg.Pool, name: str) -> None:
        with self._lock:
            self._pools[id(pool)] = (pool, name)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "goldenhour_db_pool_connections", "Open connections of the pool", labels=["pool"]
        )
        use = GaugeMetricFamily(
            "goldenhour_db_pool_connections_in_use",
            "Connections of the pool held by a caller",
            labels=["pool"],
        )
        limit = GaugeMetricFamily(
            "goldenhour_db_pool_max_connections", "The pool's bound", labels=["pool"]
        )
        totals: dict[str, list[int]] = {}
        with self._lock:
            for key, (pool, _) in list(self._pools.items()):
                if pool.is_closing():
                    del self._pools[key]
            pools = list(self._pools.values())
        for pool, name in pools:
            t = totals.setdefault(name, [0, 0, 0])
            open_, idle = pool.get_size(), pool.get_idle_size()
            t[0] += open_
            t[1] += max(0, open_ - idle)
            t[2] += pool.get_max_size()
        for name, (open_, in_use, bound) in sorted(totals.items()):
            size.add_metric([name], open_)
            use.add_metric([name], in_use)
            limit.add_metric([name], bound)
        yield from (size, use, limit)


LagSource = Callable[[], Mapping[tuple[str, int], int]]


class ConsumerLagCollector(Collector):
    """Records behind the end of the log, per partition this process holds, by consumer.

    Each source answers from what its consumer already knows (the high watermark of its last
    fetch, the offsets it handled or committed): a scrape asks nothing of the broker."""

    def __init__(self) -> None:
        self._sources: dict[str, LagSource] = {}
        self._lock = threading.Lock()

    def track(self, consumer: str, source: LagSource) -> None:
        with self._lock:
            self._sources[consumer] = source

    def untrack(self, consumer: str, source: LagSource) -> None:
        with self._lock:
            if self._sources.get(consumer) is source:
                del self._sources[consumer]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "goldenhour_consumer_lag_records",
            "Records on the partition not yet handled by this process's consumer",
            labels=["consumer", "topic", "partition"],
        )
        with self._lock:
            sources = list(self._sources.items())
        for consumer, source in sources:
            try:
                found = dict(source())
            except Exception as exc:  # a scrape must answer whatever one source does
                log.info("metrics.lag_unreadable", consumer=consumer, error=repr(exc)[:200])
                continue
            for (topic, partition), behind in sorted(found.items()):
                lag.add_metric([consumer, topic, str(partition)], max(0, behind))
        yield lag


POOLS = PoolCollector()
CONSUMER_LAG = ConsumerLagCollector()
REGISTRY.register(POOLS)
REGISTRY.register(CONSUMER_LAG)
