"""The metrics a running system exports: every metric the alert rules and the dashboards use
exists on some part's /metrics, and one absence, told, delivered and acknowledged, is
observed exactly once in each golden-hour histogram and counted among the alerts open."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from goldenhour.dev.devsystem import DEV_POOL_MAX, DevSystem
from goldenhour.dev.parts import PartProcess
from goldenhour.dev.servers import free_port
from goldenhour.dev.waiting import eventually
from tests.e2e.helpers import (
    SystemSetup,
    fetchval,
    place_high_risk_child,
    report_absence,
    the_alert,
)
from tests.unit.deploy.test_rules import used_metric_names

pytestmark = pytest.mark.e2e

WORKERS = ("streams", "dispatcher")
# Made by Prometheus itself for every target, not by a part.
SCRAPE_METRICS = {"up"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}
HISTOGRAMS = (
    "goldenhour_alert_first_notification_seconds",
    "goldenhour_alert_first_delivery_seconds",
    "goldenhour_alert_first_acknowledgement_seconds",
)


async def serve_worker_metrics(system: DevSystem) -> None:
    """Start the workers again with a health port each, where their /metrics is served."""
    for part in WORKERS:
        await asyncio.to_thread(system.parts[part].stop)
        env = {**system.env, "GOLDENHOUR_HEALTH_PORT": str(free_port())}
        system.parts[part] = PartProcess(part, env).start()
    await system.wait_ready()


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="metrics", prepare=serve_worker_metrics)


def metrics_urls(system: DevSystem) -> dict[str, str]:
    urls = {"api": f"{system.api_url}/metrics"}
    for part in WORKERS:
        port = system.parts[part].env["GOLDENHOUR_HEALTH_PORT"]
        urls[part] = f"http://127.0.0.1:{port}/metrics"
    return urls


async def scrape(system: DevSystem) -> dict[str, list]:
    """Every part's metric families, as Prometheus would read them."""
    async with httpx.AsyncClient(timeout=5.0, headers=system.metrics_headers()) as client:
        found = {}
        for part, url in metrics_urls(system).items():
            r = await client.get(url)
            assert r.status_code == 200, f"{part}: {r.status_code} {r.text[:200]}"
            found[part] = list(text_string_to_metric_families(r.text))
        return found


def exported_names(families: list) -> set[str]:
    """Every name a query may select from these families: the samples', and the suffixed names
    of each counter and histogram even before it has a sample."""
    names: set[str] = set()
    for family in families:
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


def total(scraped: dict[str, list], sample_name: str, **labels: str) -> float:
    """The sum over every part of the samples of that name carrying those labels."""
    return sum(
        sample.value
        for families in scraped.values()
        for family in families
        for sample in family.samples
        if sample.name == sample_name and labels.items() <= sample.labels.items()
    )


async def test_metrics_of_rules_and_dashboards_exist_and_one_alert_is_observed_once(
    system: DevSystem,
) -> None:
    await place_high_risk_child(system)
    await report_absence(system)
    alert = await the_alert(system)

    async def delivered() -> bool:
        sql = "SELECT count(*) FROM notifications WHERE alert_id = $1 AND status = 'delivered'"
        return await fetchval(system, sql, alert["alert_id"]) > 0

    await eventually(delivered, 20, "an SMS of the alert delivered", every=0.1)
    async with system.client("lbh-dm1") as dm:
        r = await dm.post(f"/alerts/{alert['alert_id']}/ack")
        assert r.status_code == 200, r.text

    ours = {"kind": "missing", "authority": "LBH"}

    async def observed() -> dict[str, list]:
        scraped = await scrape(system)
        counts = [total(scraped, f"{name}_count", **ours) for name in HISTOGRAMS]
        open_now = total(scraped, "goldenhour_alerts_open", risk="high", **ours)
        assert counts == [1, 1, 1] and open_now == 1, (counts, open_now)
        lagging = {
            (part, sample.labels["consumer"])
            for part, families in scraped.items()
            for family in families
            for sample in family.samples
            if sample.name == "goldenhour_consumer_lag_records"
        }
        assert lagging == {("streams", "streams"), ("dispatcher", "dispatcher")}, lagging
        return scraped

    # The alert gauges are counted every few seconds; the histograms as things happen.
    scraped = await eventually(observed, 30, "each first observed and the alert counted")

    exported = set().union(*(exported_names(families) for families in scraped.values()))
    missing = used_metric_names() - SCRAPE_METRICS - exported
    assert not missing, f"used by the rules or dashboards but on no part's /metrics: {missing}"

    # One part observed each first, however many saw the events: the database decided.
    for name in HISTOGRAMS:
        parts = [p for p, fams in scraped.items() if total({p: fams}, f"{name}_count", **ours)]
        assert len(parts) == 1, (name, parts)
    # The first message went at once (the anchor is the report's last seen, just now).
    assert total(scraped, "goldenhour_alert_first_notification_seconds_bucket", le="60.0") == 1
    assert total(scraped, "goldenhour_alerts_open", kind="missing") == 1
    pool_max = {
        part: total({part: families}, "goldenhour_db_pool_max_connections", pool="main")
        for part, families in scraped.items()
    }
    # GOLDENHOUR_DB_POOL_MAX bounds the API's and the dispatcher's; the worker's is its own.
    assert pool_max["api"] == pool_max["dispatcher"] == DEV_POOL_MAX, pool_max
    assert pool_max["streams"] > 0, pool_max
