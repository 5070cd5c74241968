"""The console's figures page over the running system: three episodes of Hackney's seeded
through the API (one acknowledged, found and interviewed within 72 hours; one away, found and
still to be interviewed; one of the same child still open) counted in the page's tables as the
API counts them, for Hackney's duty manager, the Met and a national unit; the same figures as
CSV; another authority, an NGO and immigration enforcement refused; a bad form shown again.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import lxml.html
import pytest
import pytest_asyncio
import yaml

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.london import directory, event, identified_as, placement
from goldenhour.dev.waiting import eventually
from goldenhour.infra.db import create_pool
from goldenhour.infra.settings import Settings
from goldenhour.services.app import create_app
from goldenhour.services.auth import Caller
from goldenhour.services.console import sessions
from goldenhour.services.console.web import signed_in
from tests.e2e.console_client import Console
from tests.e2e.helpers import SystemSetup, api_get, fetchval, post_event, sneak_key_in

ONCE = "LBH-2026-0501"  # missing twice: found and interviewed, then missing again
AWAY = "LBH-2026-0502"  # away since 40 days ago, found, interview not yet held


def figures_directory() -> tuple[dict, dict]:
    """The London directory with a user at the national unit and an NGO with one of its own."""
    config, keys = directory()
    config["organisations"].append({"code": "NGO1", "kind": "ngo", "name": "A Charity"})
    for code, user, role in (("UKMPU", "ukmpu-1", "duty_manager"), ("NGO1", "ngo-1", "admin")):
        keys[user] = f"gh_{uuid.uuid4().hex}"
        org = next(o for o in config["organisations"] if o["code"] == code)
        org.setdefault("users", []).append(
            {"id": user, "roles": [role], "api_key_sha256": hash_api_key(keys[user])}
        )
    return config, keys


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="console_figures", directory=figures_directory)


@dataclass(frozen=True)
class Seeded:
    away_seen: datetime  # the away episode's start: a month of its own, 40 days ago


async def _alert(system: DevSystem, child: str, after: datetime) -> uuid.UUID:
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1 AND kind = 'missing' AND anchor_at >= $2"
    return await eventually(lambda: fetchval(system, sql, child, after), 15, f"{child}'s alert")


async def _absence(system: DevSystem, child: str, seen: datetime, **data: str) -> None:
    body = {"last_seen_at": seen.isoformat(), "placement_id": f"{child}-P1", **data}
    r = await post_event(system, "oak-staff1", event("absence.reported", child, body))
    assert r.status_code == 202, r.text


async def _located(system: DevSystem, child: str) -> None:
    found = {"located_at": datetime.now(UTC).isoformat(), "status": "returned"}
    r = await post_event(system, "oak-staff1", event("child.located", child, found))
    assert r.status_code == 202, r.text


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def seeded(system: DevSystem) -> Seeded:
    """The three episodes, seeded as the agencies would record them, once the police are told
    of every one (so the counts stand still while the tests read them)."""
    for child, ssda903 in ((ONCE, "LBH0501"), (AWAY, "LBH0502")):
        r = await post_event(
            system, "lbh-dm1", event("child.identified", child, identified_as(ssda903))
        )
        assert r.status_code == 202, r.text
        r = await post_event(system, "lbh-dm1", event("placement.started", child, placement(child)))
        assert r.status_code == 202, r.text
    now = datetime.now(UTC)
    # Acknowledged some 20 minutes after last seen: in the 15–30 minute band.
    await _absence(system, ONCE, now - timedelta(minutes=20))
    alert_id = await _alert(system, ONCE, now - timedelta(minutes=21))
    async with system.client("lbh-dm1") as la:
        assert (await la.post(f"/alerts/{alert_id}/ack")).status_code == 200
    await _located(system, ONCE)
    held = {"completed_at": datetime.now(UTC).isoformat(), "by": "lbh-sw1"}
    r = await post_event(system, "lbh-sw1", event("return_interview.completed", ONCE, held))
    assert r.status_code == 202, r.text
    await _absence(system, ONCE, datetime.now(UTC))  # missing again, and still
    away_seen = now - timedelta(days=40)
    await _absence(system, AWAY, away_seen, classification="away")
    await _located(system, AWAY)

    async def police_told_of_all() -> bool:
        r = await api_get(system, "lbh-dm1", "/figures")
        return r.json()["total"]["to_police_told"]["count"] == 3

    await eventually(police_told_of_all, 60, "the police told of every episode")
    return Seeded(away_seen)


# --- reading the page -------------------------------------------------------------------------


async def signed_in_as(system: DevSystem, user: str) -> Console:
    console = Console(system)
    await console.get("/console/login")
    r = await console.post("/console/login", {"api_key": system.keys[user]})
    assert r.status_code == 303, r.text
    return console


def rows(page: str, table_id: str) -> list[list[str]]:
    """A table's rows (head, body and foot) as the text of their cells, as read aloud (soft
    hyphens left out)."""
    found = lxml.html.fromstring(page).xpath(f'//table[@id="{table_id}"]')
    assert found, f"no table #{table_id} on the page"
    return [
        [
            re.sub(r"\s+", " ", cell.text_content().replace("\xad", "")).strip()
            for cell in tr.xpath("./th|./td")
        ]
        for tr in found[0].xpath(".//tr")
    ]


def by_first(page: str, table_id: str) -> dict[str, list[str]]:
    """A table's rows keyed by their first cell (a month, a band, a figure's name)."""
    return {row[0]: row[1:] for row in rows(page, table_id)}


HEAD_AND_FOOT = ("Time from last seen", "All episodes")


def month_of(system: DevSystem, at: datetime) -> str:
    return at.astimezone(ZoneInfo(system.config["timezone"])).strftime("%b %Y")


def hm(minutes: float | None) -> str:
    if minutes is None:
        return "—"
    whole = int(minutes + 0.5)
    return f"{whole // 60}:{whole % 60:02d}"


def check_against_api(page: str, api: dict) -> None:
    """Every number the page's tables show is the API's."""
    months = by_first(page, "episodes-table")
    interviews = by_first(page, "interviews-table")
    for p in api["months"]:
        label = datetime.strptime(p["period"], "%Y-%m").strftime("%b %Y")
        i = p["interviews"]
        pct = "—" if i["within_72h_pct"] is None else f"{i['within_72h_pct']:g}%"
        assert months[label] == [str(p[k]) for k in ("missing", "away", "episodes", "children")]
        assert interviews[label] == [
            str(i["due"]),
            str(i["within_72h"]),
            pct,
            str(i["late"]),
            str(i["still_open"]),
        ], label
    times = by_first(page, "times-table")
    total = api["total"]
    for name, key in (
        ("Police told", "to_police_told"),
        ("First acknowledgement", "to_first_ack"),
        ("Located", "to_located"),
    ):
        s = total[key]
        assert times[name] == [str(s["count"]), hm(s["median_minutes"]), hm(s["p90_minutes"])]
    summary = by_first(page, "summary-table")
    assert summary["Escalation steps fired with nobody acknowledging"] == [
        str(total["steps_fired_unacknowledged"])
    ]


# --- the tests ----------------------------------------------------------------------------------


async def test_hackneys_duty_manager_sees_its_episodes_counted(
    system: DevSystem, seeded: Seeded
) -> None:
    manager = await signed_in_as(system, "lbh-dm1")
    board = await manager.get("/console")
    assert 'href="/console/figures"' in board.text  # the navigation's link
    page = await manager.get("/console/figures")
    assert page.status_code == 200, page.text
    api = (await api_get(system, "lbh-dm1", "/figures")).json()
    check_against_api(page.text, api)
    assert len(api["months"]) == 12 and len(rows(page.text, "episodes-table")) == 1 + 12 + 1

    summary = by_first(page.text, "summary-table")
    counted = {k: summary[k][0] for k in ("Episodes", "Missing", "Away", "Children")}
    assert counted == {"Episodes": "3", "Missing": "2", "Away": "1", "Children": "2"}
    assert summary["Episodes per child"] == ["1.5"]
    assert summary["Return home interviews due"] == ["1"]
    assert summary["Held within 72 hours"] == ["1 (100%)"]
    assert (summary["Late"], summary["Still open"]) == (["0"], ["1"])

    # Month by month: the away episode in its own month, the two missing ones in this one.
    months = by_first(page.text, "episodes-table")
    this_month, away_month = month_of(system, datetime.now(UTC)), month_of(system, seeded.away_seen)
    assert months[away_month] == ["0", "1", "1", "1"]
    assert months[this_month] == ["2", "0", "2", "1"]
    assert months["Total"] == ["2", "1", "3", "2"]
    quiet = [m for m in months if m not in {this_month, away_month, "Month", "Total"}]
    assert len(quiet) == 10 and all(months[m] == ["0", "0", "0", "0"] for m in quiet)
    assert by_first(page.text, "interviews-table")[away_month] == ["0", "0", "—", "0", "1"]

    bands = by_first(page.text, "first-ack-table")
    assert bands["15–30 min"] == ["1"] and bands["Never acknowledged"] == ["2"]
    counted_bands = [int(v[0]) for k, v in bands.items() if k not in HEAD_AND_FOOT]
    assert sum(counted_bands) == 3 and bands["All episodes"] == ["3"]
    times = by_first(page.text, "times-table")
    assert times["First acknowledgement"][0] == "1" and times["Located"][0] == "2"

    # Three charts, inline, each with its table; the policy allows their styles by hash only.
    assert page.text.count("<svg") == 3 and "<script" not in page.text.split("<main", 1)[1]
    policy = page.headers["content-security-policy"]
    assert "style-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    assert "script-src" not in policy and "default-src 'self'" in policy
    assert "England 63%" in page.text and "Missing People" in page.text
    assert 'href="/console/figures.csv?authority=LBH&amp;from=' in page.text


async def test_the_csv_holds_the_pages_figures(system: DevSystem, seeded: Seeded) -> None:
    manager = await signed_in_as(system, "lbh-dm1")
    page = await manager.get("/console/figures")
    link = lxml.html.fromstring(page.text).xpath('//a[@id="csv"]/@href')[0]
    r = await manager.get(link)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"
    assert "attachment" in r.headers["content-disposition"]
    api = await api_get(system, "lbh-dm1", "/figures", format="csv")
    assert r.text == api.text  # the same figures, to the byte
    total = list(csv.DictReader(io.StringIO(r.text)))[-1]
    assert (total["period"], total["episodes"], total["missing"], total["away"]) == (
        "total",
        "3",
        "2",
        "1",
    )
    assert (total["interviews_within_72h"], total["interviews_still_open"]) == ("1", "1")


@pytest.mark.parametrize("user", ["mps-cr1", "ukmpu-1"])
async def test_the_police_and_a_national_unit_see_hackneys_figures(
    system: DevSystem, seeded: Seeded, user: str
) -> None:
    console = await signed_in_as(system, user)
    every = await console.get("/console/figures")
    assert every.status_code == 200, every.text
    options = lxml.html.fromstring(every.text).xpath('//select[@id="f-authority"]/option/@value')
    assert "LBH" in options and "LBI" in options and "" in options
    page = await console.get("/console/figures", params={"authority": "LBH"})
    assert page.status_code == 200, page.text
    assert "Hackney Children's Services" in lxml.html.fromstring(page.text).xpath(
        'string(//*[@id="figures-of"])'
    )
    check_against_api(page.text, (await api_get(system, "lbh-dm1", "/figures")).json())
    assert by_first(page.text, "summary-table")["Episodes"] == ["3"]


async def test_another_authority_sees_only_its_own_and_is_refused_hackneys(
    system: DevSystem, seeded: Seeded
) -> None:
    islington = await signed_in_as(system, "lbi-dm1")
    own = await islington.get("/console/figures")
    assert own.status_code == 200
    # Nothing happened in Islington: zeros where something is counted, a dash where a time is.
    assert by_first(own.text, "summary-table")["Episodes"] == ["0"]
    assert by_first(own.text, "summary-table")["Episodes per child"] == ["—"]
    assert by_first(own.text, "times-table")["Located"] == ["0", "—", "—"]
    assert by_first(own.text, "episodes-table")["Total"] == ["0", "0", "0", "0"]
    for path in ("/console/figures", "/console/figures.csv"):
        refused = await islington.get(path, params={"authority": "LBH"})
        assert refused.status_code == 403, (path, refused.text)
        assert "belong to another agency" in refused.text
        assert "Hackney" in refused.text and "<svg" not in refused.text


async def test_an_ngo_has_no_figures_and_no_link_to_them(system: DevSystem) -> None:
    ngo = await signed_in_as(system, "ngo-1")
    board = await ngo.get("/console")
    assert board.status_code == 200 and "/console/figures" not in board.text
    for path in ("/console/figures", "/console/figures.csv"):
        refused = await ngo.get(path, params={"authority": "LBH"})
        assert refused.status_code == 403, refused.text
        assert "acts for no child" in refused.text


@pytest.mark.parametrize(
    ("params", "field", "said"),
    [
        ({"from": "yesterday"}, "from", "is not a date"),
        ({"to": "2026-02-30"}, "to", "is not a date"),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "to", "To must not be before from"),
        ({"from": "1999-12-31"}, "from", "Figures start in 2000"),
        ({"from": "2019-01-01", "to": "2026-01-02"}, "to", "A range spans at most five years"),
        ({"authority": "MPS"}, "authority", "MPS is not a local authority"),
        ({"authority": "NOPE"}, "authority", "NOPE is not a local authority"),
    ],
)
async def test_a_bad_form_is_shown_again_saying_why(
    system: DevSystem, params: dict, field: str, said: str
) -> None:
    console = await signed_in_as(system, "mps-cr1")
    r = await console.get("/console/figures", params=params)
    assert r.status_code == 422, r.text
    doc = lxml.html.fromstring(r.text)
    assert said in doc.xpath(f'string(//*[@id="f-{field}-error"])')
    assert doc.xpath(f'//*[@id="f-{field}"]/@aria-invalid') == ["true"]
    assert doc.xpath('//form[@id="figures-form"]') and "<svg" not in r.text
    for name, value in params.items():  # the form as it was sent
        if name != "authority":
            assert doc.xpath(f'//input[@name="{name}"]/@value') == [value]
    csv_refused = await console.get("/console/figures.csv", params=params)
    assert csv_refused.status_code == 422


async def test_immigration_enforcement_gets_nothing(system: DevSystem, tmp_path) -> None:
    """Its session is no session, and the page refuses the organisation even past that check:
    the real application over the same database, the key slipped past the directory."""
    path = tmp_path / "goldenhour.yaml"
    path.write_text(yaml.safe_dump(system.config))
    env = {k: v for k, v in system.env.items() if k.startswith(("GOLDENHOUR_", "TWILIO_", "SMTP_"))}
    app = create_app(Settings.model_validate({**env, "GOLDENHOUR_CONFIG": str(path)}))
    sneak_key_in(app.state.config)
    app.state.pool = await create_pool(system.database_url, min_size=1, max_size=2)
    hoie = Caller(*app.state.config.user_for_key_hash(hash_api_key("hoie-key")))
    try:
        token = await sessions.start(app.state.pool, hoie, timedelta(hours=1), datetime.now(UTC))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            api = await c.get("/api/v1/figures", headers={"Authorization": "Bearer hoie-key"})
            assert api.status_code == 403
            cookie = {"Cookie": f"{sessions.COOKIE}={token}"}
            for page in ("/console/figures", "/console/figures.csv"):
                r = await c.get(page, params={"authority": "LBH"}, headers=cookie)
                assert r.status_code == 303 and "/console/login" in r.headers["location"]
            # Were it signed in all the same, the page itself says no.
            app.dependency_overrides[signed_in] = lambda: sessions.ConsoleUser(
                hoie, "csrf", datetime.now(UTC) + timedelta(hours=1)
            )
            for page in ("/console/figures", "/console/figures.csv"):
                r = await c.get(page, params={"authority": "LBH"})
                assert r.status_code == 403, r.text
                assert "acts for no child" in r.text and "<svg" not in r.text
    finally:
        await app.state.pool.close()
