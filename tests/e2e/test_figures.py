"""The golden-hour figures through the API on the running system: one episode from report to
return interview counted as it happened, as JSON and CSV, for whoever may see it and nobody
else; the SSDA903 Missing table of the same episode passes the sector's validator."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import event
from goldenhour.dev.waiting import eventually
from goldenhour.services.report_cli import missing_table_csv
from tests.e2e.helpers import (
    api_get,
    connection,
    fetchval,
    place_high_risk_child,
    post_event,
    report_absence,
)
from tests.ssda903.validator import check_missing_table

CHILD = "LBH-2026-0777"
POLICE_DELIVERED = """
SELECT count(*) FROM notifications
WHERE child_id = $1 AND org_code = 'MPS' AND delivered_at IS NOT NULL
"""


async def one_episode(system: DevSystem) -> datetime:
    """Hackney's child missing since ten minutes ago, acknowledged, found, interviewed."""
    await place_high_risk_child(system, CHILD)
    seen = datetime.now(UTC) - timedelta(minutes=10)
    await report_absence(system, seen, CHILD)
    await eventually(lambda: fetchval(system, POLICE_DELIVERED, CHILD), 30, "police told")
    alert_id = await eventually(
        lambda: fetchval(
            system, "SELECT alert_id FROM alerts WHERE child_id = $1 AND kind = 'missing'", CHILD
        ),
        10,
        "the missing alert",
    )
    async with system.client("lbh-dm1") as la:
        assert (await la.post(f"/alerts/{alert_id}/ack")).status_code == 200
    found = {"located_at": datetime.now(UTC).isoformat(), "status": "returned"}
    r = await post_event(system, "oak-staff1", event("child.located", CHILD, found))
    assert r.status_code == 202, r.text
    held = {"completed_at": datetime.now(UTC).isoformat(), "by": "lbh-sw1"}
    r = await post_event(system, "lbh-sw1", event("return_interview.completed", CHILD, held))
    assert r.status_code == 202, r.text
    return seen


async def test_one_episode_is_counted_as_it_happened_for_those_who_may_see_it(system) -> None:
    seen = await one_episode(system)
    r = await api_get(system, "lbh-dm1", "/figures")
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    assert (total["episodes"], total["missing"], total["away"], total["children"]) == (1, 1, 0, 1)
    waited = (datetime.now(UTC) - seen).total_seconds() / 60
    for key in ("to_police_told", "to_first_ack", "to_located"):
        assert total[key]["count"] == 1, key
        assert 10 <= total[key]["median_minutes"] <= waited + 0.1, key
    interviews = total["interviews"]
    assert (interviews["due"], interviews["within_72h"], interviews["within_72h_pct"]) == (
        1,
        1,
        100.0,
    )
    assert r.json()["national_interviews_within_72h_pct"] == 63.0

    # The same for its police force and its care home (national units, NGOs and immigration
    # enforcement: the access matrix).
    for user in ("mps-cr1", "oak-staff1"):
        them = await api_get(system, user, "/figures", authority="LBH")
        assert them.status_code == 200, (user, them.text)
        assert them.json()["total"]["episodes"] == 1, user
    # Islington's own figures hold none of it; Hackney's are not Islington's to see.
    assert (await api_get(system, "lbi-dm1", "/figures")).json()["total"]["episodes"] == 0
    assert (await api_get(system, "lbi-dm1", "/figures", authority="LBH")).status_code == 403
    # Elm House has no child of Hackney's placed with it.
    elm = await api_get(system, "elm-staff1", "/figures", authority="LBH")
    assert elm.status_code == 200 and elm.json()["total"]["episodes"] == 0


async def test_the_csv_holds_the_same_figures_a_month_a_row(system) -> None:
    r = await api_get(system, "lbh-dm1", "/figures", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[-1]["period"] == "total" and rows[-1]["episodes"] == "1"
    assert len(rows) == 13  # twelve months and the total


async def test_bad_ranges_and_authorities_are_refused_naming_the_parameter(system) -> None:
    for params, field in (
        ({"from": "2026-05-01", "to": "2026-04-01"}, "to"),
        ({"from": "1999-12-31"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-02"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"authority": "MPS"}, "authority"),
        ({"format": "xml"}, "format"),
    ):
        r = await api_get(system, "lbh-dm1", "/figures", **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"][-1] == field, (params, r.text)


async def test_the_missing_table_of_the_episode_passes_the_validator(system) -> None:
    config = GoldenHourConfig.model_validate(system.config)
    year = datetime.now(config.tz).year - (datetime.now(config.tz).month < 4)
    async with connection(system) as conn:
        text = await missing_table_csv(conn, config, "LBH", year)
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[:3] for r in rows[1:]] == [["LBH0042", "01/03/2011", "M"]]
    report = check_missing_table(text, year)
    assert report["errors"] == [], report
