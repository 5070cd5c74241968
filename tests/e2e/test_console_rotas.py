"""The console's rota page and the board's "who is on" header over the running system: who is
on now, the alerts they hold, a duty manager's override, swap (cover asked for and taken) and
temporary schedule and withdrawal through the forms, a clash or a bad form refused with the
reason and nothing stored, a gap shown as one, and everyone else reading the page (their own
organisation) or refused it (another's).

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
# The changes still to end: one withdrawn after it started stays on record, ended then.
LIVE_ROWS = "SELECT * FROM rota_changes WHERE status <> 'withdrawn' AND end_at > now()"
LIVE = f"SELECT count(*) FROM ({LIVE_ROWS}) AS live"


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(name="console_rotas", passwords=("lbh-dm1", "lbh-sw1", "lbi-dm1"))


@pytest.fixture(autouse=True)
async def no_changes_left(system: DevSystem) -> AsyncIterator[None]:
    """Each test starts from the rota alone: whatever it changed is withdrawn afterwards."""
    yield
    async with system.client("lbh-dm1") as api:
        for row in await fetch(system, LIVE_ROWS):
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


def timed_rows(page: str) -> list[tuple[datetime, datetime, str]]:
    """The rows of the next-14-days table, each as its start, its end and its text."""
    table = re.search(r'<table class="cards compact" id="stretches">(.*?)</table>', page, re.S)
    assert table
    out = []
    for cls, row in re.findall(r'<tr class="(stretch[^"]*)">(.*?)</tr>', table.group(1), re.S):
        start, end = re.findall(r'<time datetime="([^"]+)"', row)[:2]
        out.append(
            (datetime.fromisoformat(start), datetime.fromisoformat(end), f"[{cls}] {words(row)}")
        )
    return out


def options(page: str, select_id: str) -> list[tuple[str, str]]:
    """The options of the select with `select_id`: each its value and its text."""
    found = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert found, f"no select #{select_id} on the page"
    listed = re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', found.group(1), re.S)
    return [(html.unescape(value), words(text)) for value, text in listed]


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
    # It had started: it ends now, and who was on until then stays on record.
    sql = "SELECT withdrawn_by, end_at <= now() AS ended FROM rota_changes WHERE change_id = $1"
    row = (await fetch(system, sql, uuid.UUID(change_id)))[0]
    assert (row["withdrawn_by"], row["ended"]) == ("user:lbh-dm1", True)
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
    change_id = await fetchval(system, f"SELECT change_id FROM ({LIVE_ROWS}) AS live")
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


# --- swaps: a shift's cover asked for, and taken ---------------------------------------------


def proposed_id(page: str) -> str:
    found = re.search(r'<tr class="change proposed" data-change-id="([0-9a-f-]{36})"', page)
    assert found, "no proposed change listed"
    return found.group(1)


async def test_cover_asked_for_and_taken_puts_the_taker_on(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    page = await manager.get(PAGE)
    assert 'id="swap-form"' in page.text and 'href="#swap-form"' in page.text
    shifts = options(page.text, "swap-shift")
    value, label = shifts[0]
    assert value.startswith("lbh-duty@") and "(on now)" in label, shifts[0]
    # Every shift of the fortnight that has not ended, each once.
    assert len(shifts) == len({v for v, _ in shifts}) >= 14
    r = await manager.post(f"{PAGE}/swaps", {"shift": value, "by": "", "reason": "off sick"})
    assert r.status_code == 303, words(r.text)
    assert r.headers["location"] == f"{PAGE}?done=asked"
    page = await manager.get(r.headers["location"])
    assert "Cover asked for" in part(page.text, "done")
    # Asked for, not yet taken: the shift is still theirs.
    assert part(page.text, "on-now") == "lbh-duty"
    listed = part(page.text, "change-list")
    assert "Swap asked: lbh-duty's shift needs someone to take it proposed" in listed, listed
    assert "off sick · A. Duty" in listed
    assert "(cover asked already)" in dict(options(page.text, "swap-shift"))[value]
    change_id = proposed_id(page.text)
    take = f"{PAGE}/swaps/{change_id}/take"
    assert f'action="{take}"' in page.text
    # Anyone of the role but the one whose shift it is.
    assert options(page.text, f"take-{change_id}-by") == [("lbh-edt-2", "lbh-edt-2")]

    own = await manager.post(take, {"by": "lbh-duty"})
    assert own.status_code == 422
    assert f'href="#take-{change_id}-form"' in own.text and "Nothing was changed" in own.text
    said = part(own.text, f"take-{change_id}-by-error")
    assert said == "Choose someone other than the person whose shift it is."
    other_role = await manager.post(take, {"by": "lbh-head"})
    assert other_role.status_code == 422
    assert "lbh-head is not a duty manager contact of LBH" in part(
        other_role.text, f"take-{change_id}-by-error"
    )
    status = "SELECT status FROM rota_changes WHERE change_id = $1"
    assert await fetchval(system, status, uuid.UUID(change_id)) == "proposed"

    r = await manager.post(take, {"by": "lbh-edt-2"})
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=taken"
    board = await manager.get("/console")
    assert part(board.text, "on-call") == "Duty manager on call: lbh-edt-2"
    page = await manager.get(r.headers["location"])
    assert "Shift taken" in part(page.text, "done")
    assert part(page.text, "on-now") == "lbh-edt-2"
    assert "Swap: lbh-edt-2 takes lbh-duty's shift" in part(page.text, "change-list")
    assert 'class="change proposed"' not in page.text
    first = stretch_rows(page.text)[0]
    assert "Changed by swap, instead of lbh-duty" in first and "lbh-edt-2" in first, first
    sql = "SELECT status, by_member, taken_by FROM rota_changes WHERE change_id = $1"
    row = (await fetch(system, sql, uuid.UUID(change_id)))[0]
    assert tuple(row.values()) == ("active", "lbh-edt-2", "user:lbh-dm1")
    # The API, reading the same store, agrees.
    async with system.client("lbh-sw1") as api:
        on = (await api.get(f"/rotas/{ROTA}/oncall")).json()
    assert on["members"] == ["lbh-edt-2"] and on["source"] == "override"

    again = await manager.post(take, {"by": "lbh-edt-2"})
    assert again.status_code == 404 and "does not wait for a taker" in words(again.text)
    unknown = await manager.post(f"{PAGE}/swaps/{uuid.uuid4()}/take", {"by": "lbh-edt-2"})
    assert unknown.status_code == 404 and "does not wait for a taker" in words(unknown.text)


async def test_cover_asked_for_and_taken_at_once(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    page = await manager.get(PAGE)
    value, label = next((v, t) for v, t in options(page.text, "swap-shift") if "(on now)" not in t)
    member, _, at = value.partition("@")
    assert member == "lbh-duty", label  # the rota's first week is lbh-duty's
    form = {"shift": value, "by": "lbh-edt-2", "reason": "swapped nights"}
    r = await manager.post(f"{PAGE}/swaps", form)
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=taken", words(r.text)
    sql = (
        "SELECT kind, status, member, by_member, start_at FROM rota_changes"
        " WHERE status <> 'withdrawn' AND end_at > now()"
    )
    rows = await fetch(system, sql)
    assert [tuple(r.values()) for r in rows] == [
        ("swap", "active", "lbh-duty", "lbh-edt-2", datetime.fromisoformat(at))
    ]
    page = await manager.get(r.headers["location"])
    assert "Swap: lbh-edt-2 takes lbh-duty's shift" in part(page.text, "change-list")
    assert 'class="change proposed"' not in page.text
    assert "(swapped already)" in dict(options(page.text, "swap-shift"))[value]
    shift = next(text for start, _, text in timed_rows(page.text) if start == rows[0]["start_at"])
    assert "Changed by swap, instead of lbh-duty" in shift and "lbh-edt-2" in shift, shift
    # lbh-edt-2 is on by a live change then already: refused, and no proposal left behind.
    again = await manager.post(f"{PAGE}/swaps", form)
    assert again.status_code == 422
    said = part(again.text, "swap-form-error")
    assert "overlaps a live change for the same person (Swap: lbh-edt-2 takes" in said, said
    assert await fetchval(system, LIVE) == 1


async def test_a_swap_of_a_shift_not_theirs_or_over_is_refused_and_stores_nothing(
    system: DevSystem,
) -> None:
    manager = await signed_in(system, "lbh-dm1")
    page = await manager.get(PAGE)
    value, _ = options(page.text, "swap-shift")[0]
    _, _, at = value.partition("@")
    now = datetime.now(UTC)
    async with system.client("lbh-dm1") as api:
        week = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
        past = (await api.get(f"/rotas/{ROTA}/shifts", params=week)).json()
    ended = next(s for s in past[1:] if datetime.fromisoformat(s["end"]) <= now)
    seven_past = (datetime.fromisoformat(at) + timedelta(minutes=7)).isoformat()
    refused = {
        "not that member's": (
            {"shift": f"lbh-edt-2@{at}"},
            "swap-shift-error",
            "That shift is lbh-duty's by the rota, not lbh-edt-2's",
        ),
        "no shift starts then": (
            {"shift": f"lbh-duty@{seven_past}"},
            "swap-shift-error",
            "No shift of this rota starts then",
        ),
        "over": (
            {"shift": f"{ended['pattern_member']}@{ended['start']}"},
            "swap-shift-error",
            "This shift is over",
        ),
        "a contact of another role": (
            {"shift": f"lbh-head@{at}"},
            "swap-shift-error",
            "lbh-head is not a duty manager contact of LBH",
        ),
        "no shift chosen": ({"shift": ""}, "swap-shift-error", "Choose a shift from the list"),
        "a taker of another role": (
            {"shift": value, "by": "lbh-head"},
            "swap-by-error",
            "lbh-head is not a duty manager contact of LBH",
        ),
        "taken by whose shift it is": (
            {"shift": value, "by": "lbh-duty"},
            "swap-by-error",
            "someone other than the person whose shift it is",
        ),
    }
    for why, (form, where, said) in refused.items():
        r = await manager.post(f"{PAGE}/swaps", {**form, "reason": "a reason kept"})
        assert r.status_code == 422, (why, r.status_code)
        assert "Nothing was changed" in part(r.text, "form-error"), why
        assert 'href="#swap-form"' in r.text, why
        assert said in part(r.text, where), (why, part(r.text, where))
        assert 'value="a reason kept"' in r.text, why  # the form as it was sent
        assert await fetchval(system, LIVE) == 0, why


async def test_a_manager_withdraws_cover_asked_for(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    value, _ = options((await manager.get(PAGE)).text, "swap-shift")[0]
    r = await manager.post(f"{PAGE}/swaps", {"shift": value})
    assert r.status_code == 303, words(r.text)
    change_id = proposed_id((await manager.get(PAGE)).text)
    r = await manager.post(f"{PAGE}/overrides/{change_id}/withdraw")
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}?done=withdrawn"
    assert await fetchval(system, LIVE) == 0


# --- temporary schedules ----------------------------------------------------------------------


def temporary(system: DevSystem, begin: datetime, until: datetime, *rows: tuple) -> dict:
    """The temporary schedule form: its range, and shift rows (row number, start, end, member)."""
    form = {"start": local(system, begin), "end": local(system, until), "reason": "snowed in"}
    for n, start, end, member in rows:
        form |= {
            f"shift-{n}-start": local(system, start),
            f"shift-{n}-end": local(system, end),
            f"shift-{n}-member": member,
        }
    return form


async def test_a_temporary_schedule_with_a_hole_shows_the_gap(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    begin = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    hole = (begin + timedelta(hours=2), begin + timedelta(hours=4))
    until = begin + timedelta(hours=6)
    # Row 2 left empty: ignored.
    form = temporary(
        system, begin, until, (1, begin, hole[0], "lbh-edt-2"), (3, hole[1], until, "lbh-duty")
    )
    r = await manager.post(f"{PAGE}/temporary", form)
    assert r.status_code == 303, words(r.text)
    assert r.headers["location"] == f"{PAGE}?done=temporary"
    page = await manager.get(r.headers["location"])
    assert "Temporary schedule made" in part(page.text, "done")
    listed = part(page.text, "change-list")
    assert "Temporary schedule: only its own shifts count (lbh-duty, lbh-edt-2)" in listed
    rows = timed_rows(page.text)
    inside = [(s, e, text) for s, e, text in rows if s < until and e > begin]
    assert inside[0][0] == begin and inside[-1][1] == until
    for start, end, text in inside:
        assert "Changed by temporary schedule" in text, text
        if hole[0] <= start < hole[1]:
            assert end <= hole[1] and text.startswith("[stretch gap changed]"), text
            assert "nobody (fallback lbh-head is paged)" in text and "GAP" in text, text
        else:
            assert "GAP" not in text, text
            assert ("lbh-edt-2" if start < hole[0] else "lbh-duty") in text, text
    gap = [(s, e) for s, e, text in inside if "GAP" in text]
    assert gap[0][0] == hole[0] and gap[-1][1] == hole[1]
    assert all(a[1] == b[0] for a, b in zip(gap, gap[1:], strict=False))
    # Outside its range the rota is as it was.
    assert not any("temporary" in text for s, e, text in rows if e <= begin or s >= until)

    # Another temporary schedule over part of it is refused, saying which.
    later = until - timedelta(hours=1)
    clash = temporary(system, later, later + timedelta(hours=3), (1, later, until, "lbh-duty"))
    r = await manager.post(f"{PAGE}/temporary", clash)
    assert r.status_code == 422
    said = part(r.text, "temporary-form-error")
    assert "overlaps a live temporary schedule" in said and "withdraw that one first" in said
    assert await fetchval(system, LIVE) == 1


async def test_a_bad_temporary_schedule_is_refused_beside_the_field(system: DevSystem) -> None:
    manager = await signed_in(system, "lbh-dm1")
    begin = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0, microsecond=0)
    until = begin + timedelta(hours=6)
    early = begin - timedelta(days=6)
    refused = {
        "a shift outside it": (
            temporary(system, begin, until, (2, begin - timedelta(hours=1), until, "lbh-duty")),
            "temporary-shift-2-error",
            "falls outside the schedule",
        ),
        "a contact of another role": (
            temporary(system, begin, until, (1, begin, until, "lbh-head")),
            "temporary-shift-1-member-error",
            "lbh-head is not a duty manager contact of LBH",
        ),
        "a shift ending before it starts": (
            temporary(system, begin, until, (4, until, begin, "lbh-duty")),
            "temporary-shift-4-end-error",
            "The end must be after the start",
        ),
        "a row without who": (
            temporary(system, begin, until, (1, begin, until, "")),
            "temporary-shift-1-member-error",
            "Choose who is on",
        ),
        "no shifts": (
            temporary(system, begin, until),
            "temporary-shifts-error",
            "Give at least one shift",
        ),
        "past": (
            temporary(
                system,
                early,
                early + timedelta(hours=2),
                (1, early, early + timedelta(hours=1), "lbh-duty"),
            ),
            "temporary-end-error",
            "This end is past",
        ),
        "no start": (
            {**temporary(system, begin, until, (1, begin, until, "lbh-duty")), "start": ""},
            "temporary-start-error",
            "Required",
        ),
    }
    for why, (form, where, said) in refused.items():
        r = await manager.post(f"{PAGE}/temporary", form)
        assert r.status_code == 422, (why, r.status_code)
        assert "Nothing was changed" in part(r.text, "form-error"), why
        assert 'href="#temporary-form"' in r.text, why
        assert said in part(r.text, where), (why, part(r.text, where))
        assert f'value="{form["end"]}"' in r.text, why  # the form as it was sent
        assert await fetchval(system, LIVE) == 0, why


async def test_a_social_worker_cannot_swap_or_set_a_temporary_schedule(
    system: DevSystem,
) -> None:
    manager = await signed_in(system, "lbh-dm1")
    page = await manager.get(PAGE)
    value, _ = options(page.text, "swap-shift")[0]
    r = await manager.post(f"{PAGE}/swaps", {"shift": value})
    assert r.status_code == 303, words(r.text)
    change_id = proposed_id((await manager.get(PAGE)).text)
    worker = await signed_in(system, "lbh-sw1")
    page = await worker.get(PAGE)
    assert page.status_code == 200
    assert "Swap asked: lbh-duty's shift" in part(page.text, "change-list")
    assert "<form" not in page.text.split('id="main"', 1)[1]  # sign-out is in the header
    begin = datetime.now(UTC) + timedelta(days=3)
    until = begin + timedelta(hours=2)
    for path, form in (
        (f"{PAGE}/swaps", {"shift": value, "by": "lbh-edt-2"}),
        (f"{PAGE}/swaps/{change_id}/take", {"by": "lbh-edt-2"}),
        (f"{PAGE}/temporary", temporary(system, begin, until, (1, begin, until, "lbh-duty"))),
    ):
        r = await worker.post(path, form)
        assert r.status_code == 403 and "Only a duty manager or admin" in r.text, path
    sql = f"SELECT status FROM ({LIVE_ROWS}) AS live"
    assert [r["status"] for r in await fetch(system, sql)] == ["proposed"]
    # Another agency's duty manager is refused them too.
    islington = await signed_in(system, "lbi-dm1")
    for path, form in (
        (f"{PAGE}/swaps", {"shift": value}),
        (f"{PAGE}/swaps/{change_id}/take", {"by": "lbh-edt-2"}),
        (f"{PAGE}/temporary", temporary(system, begin, until, (1, begin, until, "lbh-duty"))),
    ):
        r = await islington.post(path, form)
        assert r.status_code == 403 and "belongs to another agency" in r.text, path
    assert [r["status"] for r in await fetch(system, sql)] == ["proposed"]
