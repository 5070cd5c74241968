"""The console's rota page and the board's "who is on" header over the running system: who is
on now, the alerts they hold, a duty manager's override and withdrawal through the forms, a
clash or a bad form refused with the reason and nothing stored, a gap shown as one, and
everyone else reading the page (their own organisation) or refused it (another's).

The London directory's rota puts lbh-duty on call for Hackney's duty managers this week and
lbh-edt-2 off; lbh-head is its fallback.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from tests.e2e.console_client import Console
from tests.e2e.helpers import SystemSetup, fetch, fetchval, place_high_risk_child, report_absence

ROTA = "lbh-duty-rota"
PAGE = f"/console/rotas/{ROTA}"
LIVE = "SELECT count(*) FROM rota_changes WHERE status <> 'withdrawn'"


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="console_rotas", passwords=("lbh-dm1", "lbh-sw1", "lbi-dm1"))


@pytest.fixture(autouse=True)
async def no_changes_left(system: DevSystem) -> AsyncIterator[None]:
    """Each test starts from the rota alone: whatever it changed is withdrawn afterwards."""
    yield
    rows = await fetch(system, "SELECT change_id FROM rota_changes WHERE status <> 'withdrawn'")
    async with system.client("lbh-dm1") as api:
        for row in rows:
            r = await api.delete(f"/rotas/{ROTA}/overrides/{row['change_id']}")
            assert r.status_code == 204, r.text


def words(page: str) -> str:
    """A page's text as a reader sees it: tags gone, entities read, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page))).strip()


def part(page: str, element_id: str) -> str:
    """The text of the element with `element_id` (a section, a list, a table)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id} on the page"
    return words(found.group(2))


def stretch_rows(page: str) -> list[str]:
    """The rows of the next-14-days table, each as its class and its text."""
    table = re.search(r'<table class="cards compact" id="stretches">(.*?)</table>', page, re.S)
    assert table
    rows = re.findall(r'<tr class="(stretch[^"]*)">(.*?)</tr>', table.group(1), re.S)
    return [f"[{cls}] {words(row)}" for cls, row in rows]


def leading(rows: list[str], mark: str) -> list[str]:
    """The rows from the first that carry `mark`, up to the first that does not."""
    out = []
    for row in rows:
        if mark not in row:
            break
        out.append(row)
    return out


def unmarked(rows: list[str], mark: str) -> list[str]:
    return [row for row in rows if mark not in row]


def local(system: DevSystem, at: datetime) -> str:
    """`at` as a `datetime-local` field holds it: the config's wall clock, to the minute."""
    return at.astimezone(ZoneInfo(system.config["timezone"])).strftime("%Y-%m-%dT%H:%M")


async def signed_in(system: DevSystem, user: str) -> Console:
    console = Console(system)
    r = await console.sign_in(user)
    assert r.status_code == 303, r.text
    await console.get("/console")  # the session's CSRF token
    return console


def override(system: DevSystem, begin: datetime, until: datetime, **fields: str) -> dict:
    """The override form as a manager fills it in: lbh-edt-2 for lbh-duty, unless `fields` say."""
    form = {"action": "replace", "member": "lbh-duty", "by": "lbh-edt-2", "reason": "off sick"}
    return {**form, "start": local(system, begin), "end": local(system, until), **fields}


async def test_the_board_header_says_who_is_on_and_links_the_rota(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    board = await manager.get("/console")
    assert board.status_code == 200
    assert part(board.text, "on-call") == "Duty manager on call: lbh-duty"
    assert f'href="{PAGE}"' in board.text  # the header's link and the nav's
    # Islington has no rota: no header at all.
    islington = await signed_in(system, "lbi-dm1")
    board = await islington.get("/console")
    assert board.status_code == 200 and 'id="on-call"' not in board.text
    assert "/console/rotas/" not in board.text


async def test_a_replacement_made_in_the_form_is_on_at_once(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    page = await manager.get(PAGE)
    assert page.status_code == 200
    assert part(page.text, "on-now") == "lbh-duty"
    assert 'id="override-form"' in page.text
    now = datetime.now(UTC)
    r = await manager.post(f"{PAGE}/overrides", override(system, now, now + timedelta(hours=2)))
    assert r.status_code == 303, words(r.text)
    assert r.headers["location"] == f"{PAGE}?done=added"
    board = await manager.get("/console")
    assert part(board.text, "on-call") == "Duty manager on call: lbh-edt-2"
    page = await manager.get(r.headers["location"])
    assert "Change made" in part(page.text, "done")
    assert part(page.text, "on-now") == "lbh-edt-2"
    rows = stretch_rows(page.text)
    first = rows[0]
    assert "changed" in first and "Changed by override, instead of lbh-duty" in first, first
    assert "lbh-edt-2" in first and "GAP" not in first
    # The change's two hours (two stretches, should a shift end in them), then the rota's own.
    changed = leading(rows, "Changed")
    assert 1 <= len(changed) <= 2 and len(unmarked(rows, "Changed")) == len(rows) - len(changed)
    listed = part(page.text, "change-list")
    assert "Replace lbh-duty with lbh-edt-2" in listed and "off sick · A. Duty" in listed
    # The API, reading the same store, agrees.
    async with system.client("lbh-sw1") as api:
        on = (await api.get(f"/rotas/{ROTA}/oncall")).json()
    assert on["members"] == ["lbh-edt-2"] and on["source"] == "override"


async def test_a_clash_or_a_bad_form_is_refused_saying_why_and_stores_nothing(
    system: DevSystem,
) -> None:
    manager = await signed_in(system, "lbh-dm1")
    start = datetime.now(UTC) + timedelta(days=2)
    end = start + timedelta(hours=3)
    made = await manager.post(f"{PAGE}/overrides", override(system, start, end))
    assert made.status_code == 303, words(made.text)
    assert await fetchval(system, LIVE) == 1
    refused = {
        "a clash": (
            override(
                system, start + timedelta(hours=1), end, action="add", member="lbh-edt-2", by=""
            ),
            "override-form-error",
            "overlaps a live change for the same person (Replace lbh-duty with lbh-edt-2",
        ),
        "end before start": (override(system, end, start), "override-end-error", "end must be"),
        "a contact of another role": (
            override(system, start, end, member="lbh-head", by="", action="remove"),
            "override-member-error",
            "lbh-head is not a duty manager contact of LBH",
        ),
        "replace without who": (override(system, start, end, by=""), "override-by-error", "who"),
        "ended already": (
            override(system, start - timedelta(days=4), start - timedelta(days=3)),
            "override-end-error",
            "This end is past",
        ),
        "no time": (override(system, start, end, start=""), "override-start-error", "Required"),
    }
    for why, (form, where, said) in refused.items():
        r = await manager.post(f"{PAGE}/overrides", form)
        assert r.status_code == 422, (why, r.status_code)
        assert "Nothing was changed" in part(r.text, "form-error"), why
        assert said in part(r.text, where), (why, part(r.text, where))
        # The form comes back as it was sent, for the manager to correct.
        assert f'value="{form["start"]}"' in r.text, why
        assert await fetchval(system, LIVE) == 1, why


async def test_a_removal_that_leaves_nobody_is_a_gap_paging_the_fallback(
    system: DevSystem,
) -> None:
    manager = await signed_in(system, "lbh-dm1")
    now = datetime.now(UTC)
    form = override(system, now, now + timedelta(hours=1), action="remove", by="")
    r = await manager.post(f"{PAGE}/overrides", form)
    assert r.status_code == 303, words(r.text)
    board = await manager.get("/console")
    assert part(board.text, "on-call") == (
        "Duty manager on call: nobody on: fallback lbh-head is paged"
    )
    page = await manager.get(PAGE)
    assert "GAP" in part(page.text, "now") and "fallback, lbh-head" in part(page.text, "now")
    rows = stretch_rows(page.text)
    assert "gap" in rows[0].split("]")[0] and "GAP" in rows[0], rows[0]
    assert "nobody (fallback lbh-head is paged)" in rows[0], rows[0]
    gap = leading(rows, "GAP")
    assert 1 <= len(gap) <= 2 and len(unmarked(rows, "GAP")) == len(rows) - len(gap)


async def test_a_manager_withdraws_a_change_from_the_page(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    now = datetime.now(UTC)
    r = await manager.post(f"{PAGE}/overrides", override(system, now, now + timedelta(hours=1)))
    assert r.status_code == 303, words(r.text)
    page = await manager.get(PAGE)
    change_id = re.search(r'data-change-id="([0-9a-f-]{36})"', page.text).group(1)
    withdraw = f"{PAGE}/overrides/{change_id}/withdraw"
    assert f'action="{withdraw}"' in page.text
    unsent = await manager.post(withdraw, csrf=False)
    assert unsent.status_code == 403 and "security token" in unsent.text
    r = await manager.post(withdraw)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=withdrawn"
    sql = "SELECT status, withdrawn_by FROM rota_changes WHERE change_id = $1"
    row = (await fetch(system, sql, uuid.UUID(change_id)))[0]
    assert (row["status"], row["withdrawn_by"]) == ("withdrawn", "user:lbh-dm1")
    page = await manager.get(r.headers["location"])
    assert "Change withdrawn" in part(page.text, "done")
    assert part(page.text, "on-now") == "lbh-duty" and 'id="changes-none"' in page.text
    again = await manager.post(withdraw)
    assert again.status_code == 404 and "not live any more" in again.text


async def test_a_social_worker_reads_the_rota_but_cannot_change_it(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    now = datetime.now(UTC)
    made = await manager.post(f"{PAGE}/overrides", override(system, now, now + timedelta(hours=1)))
    assert made.status_code == 303
    change_id = await fetchval(system, "SELECT change_id FROM rota_changes WHERE status = 'active'")
    worker = await signed_in(system, "lbh-sw1")
    page = await worker.get(PAGE)
    assert page.status_code == 200
    assert part(page.text, "on-now") == "lbh-edt-2"
    assert "Replace lbh-duty with lbh-edt-2" in part(page.text, "change-list")
    assert "<form" not in page.text.split('id="main"', 1)[1]  # sign-out is in the header
    assert "Only a duty manager or admin" in part(page.text, "read-only")
    start = now + timedelta(days=3)
    tried = override(system, start, start + timedelta(hours=1))
    for path, form in (
        (f"{PAGE}/overrides", tried),
        (f"{PAGE}/overrides/{change_id}/withdraw", {}),
    ):
        r = await worker.post(path, form)
        assert r.status_code == 403 and "Only a duty manager or admin" in r.text, path
    assert await fetchval(system, LIVE) == 1


async def test_another_agency_is_refused_the_rota(system: DevSystem) -> None:
    islington = await signed_in(system, "lbi-dm1")
    page = await islington.get(PAGE)
    assert page.status_code == 403 and "belongs to another agency" in page.text
    assert "lbh-duty" not in page.text
    now = datetime.now(UTC)
    r = await islington.post(f"{PAGE}/overrides", override(system, now, now + timedelta(hours=1)))
    assert r.status_code == 403 and await fetchval(system, LIVE) == 0
    assert (await islington.get("/console/rotas/no-such-rota")).status_code == 404
    assert (await Console(system).get(PAGE)).headers["location"] == f"/console/login?next={PAGE}"


async def test_the_page_leads_with_the_open_alerts_the_one_on_call_holds(
    system: DevSystem,
) -> None:
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    await place_high_risk_child(system, child)
    await report_absence(system, child_id=child)
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1 AND first_fired_at IS NOT NULL"
    alert_id = await eventually(lambda: fetchval(system, sql, child), 10, "the alert fired")
    manager = await signed_in(system, "lbh-dm1")

    async def held() -> str:
        page = (await manager.get(PAGE)).text
        return page if child in part(page, "held") else ""

    page = await eventually(held, 10, "the alert held by the one on call", every=0.2)
    assert f'href="/console/alerts/{alert_id}"' in page
    assert "missing-child alert" in part(page, "held")
    main = page.split('id="main"', 1)[1]
    assert main.index('id="held"') < main.index('id="now"') < main.index('id="ahead"')
    # Acknowledged, it is held no more.
    r = await manager.post(f"/console/alerts/{alert_id}/ack")
    assert r.status_code == 303

    async def let_go() -> bool:
        return child not in part((await manager.get(PAGE)).text, "held")

    assert await eventually(let_go, 10, "the alert let go once acknowledged", every=0.2)
