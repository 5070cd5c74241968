"""The console over HTTP against the running system: sign-in, CSRF, the case page's buttons,
care home forms, and the email acknowledgement link. The browser tests drive the same pages."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from goldenhour.dev.devsystem import DevSystem
from goldenhour.dev.waiting import eventually
from goldenhour.infra.ack_links import AckLinks
from tests.e2e.console_client import PASSWORD, Console, run_set_password
from tests.e2e.helpers import (
    SystemSetup,
    fetch,
    fetchval,
    place_high_risk_child,
    report_absence,
    step_keys,
)

LINK = re.compile(r"(http://\S+/ack/\S+)")


@pytest.fixture(scope="module")
def system_setup() -> SystemSetup:
    return SystemSetup(
        name="console",  # real minutes: only "escalate now" fires a later step
        passwords=("lbh-dm1", "lbh-sw1", "oak-staff1", "elm-staff1", "mps-cr1"),
    )


async def missing_child(system: DevSystem) -> tuple[str, uuid.UUID]:
    """A new child placed at Oak House and reported missing; its alert's id once raised."""
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    await place_high_risk_child(system, child)
    await report_absence(system, child_id=child)
    sql = "SELECT alert_id FROM alerts WHERE child_id = $1"
    alert_id = await eventually(lambda: fetchval(system, sql, child), 10, "an alert raised")
    return child, alert_id


# --- sign-in ------------------------------------------------------------------------------


async def test_sign_in_gives_a_secure_httponly_session_cookie(system: DevSystem) -> None:
    console = Console(system)
    await console.get("/console/login")
    r = await console.post("/console/login", {"user_id": "lbh-dm1", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("gh_session="))
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "max-age", "path"} <= flags
    assert "samesite=lax" in cookie.lower()
    board = await console.get("/console")
    assert board.status_code == 200 and "Open alerts" in board.text
    assert board.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in board.headers["content-security-policy"]


async def test_pages_need_a_session(system: DevSystem) -> None:
    r = await Console(system).get("/console/alerts/" + str(uuid.uuid4()))
    assert r.status_code == 303
    assert r.headers["location"].startswith("/console/login?next=/console/alerts/")


async def test_api_key_signs_in_too(system: DevSystem) -> None:
    console = Console(system)
    await console.get("/console/login")
    r = await console.post("/console/login", {"api_key": system.keys["mps-cr1"]})
    assert r.status_code == 303
    assert (await console.get("/console")).status_code == 200


async def test_wrong_password_is_generic_and_rate_limited(system: DevSystem) -> None:
    console = Console(system)
    await console.get("/console/login")
    wrong = await console.post("/console/login", {"user_id": "lbh-sw1", "password": "nope" * 4})
    unknown = await console.post("/console/login", {"user_id": "nobody", "password": PASSWORD})
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Wrong user name or password." in r.text
        assert "gh_session" not in console.cookies
    for _ in range(4):
        await console.post("/console/login", {"user_id": "lbh-sw1", "password": "x" * 12})
    limited = await console.post("/console/login", {"user_id": "lbh-sw1", "password": PASSWORD})
    assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
    assert "gh_session" not in console.cookies
    # The address is not locked out for everyone else in the same office.
    other = Console(system)
    assert (await other.sign_in("lbh-dm1")).status_code == 303


async def test_sign_in_form_without_its_token_is_refused(system: DevSystem) -> None:
    r = await Console(system).post(
        "/console/login", {"user_id": "lbh-dm1", "password": PASSWORD}, csrf=False
    )
    assert r.status_code == 403 and "gh_session=" not in r.headers.get("set-cookie", "")


async def test_sign_out_ends_the_session(system: DevSystem) -> None:
    console = Console(system)
    await console.sign_in("lbh-dm1")
    await console.get("/console")
    old = dict(console.cookies)
    r = await console.post("/console/logout")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    replay = Console(system, cookies=old)
    assert (await replay.get("/console")).status_code == 303


# --- the case page ------------------------------------------------------------------------


async def test_a_form_without_the_csrf_token_changes_nothing(system: DevSystem) -> None:
    _, alert_id = await missing_child(system)
    console = Console(system)
    await console.sign_in("lbh-dm1")
    await console.get(f"/console/alerts/{alert_id}")
    for token in (None, "forged-token"):
        data = {} if token is None else {"csrf_token": token}
        r = await console.post(f"/console/alerts/{alert_id}/ack", data, csrf=False)
        assert r.status_code == 403 and "security token" in r.text
    rows = await fetch(system, "SELECT * FROM acknowledgements WHERE alert_id = $1", alert_id)
    assert rows == []


async def test_acknowledge_and_escalate_from_the_case_page(system: DevSystem) -> None:
    child, alert_id = await missing_child(system)
    console = Console(system)
    await console.sign_in("lbh-dm1")
    page = await console.get(f"/console/alerts/{alert_id}")
    assert page.status_code == 200 and child in page.text and "Escalate now" in page.text

    r = await console.post(f"/console/alerts/{alert_id}/escalate")
    assert r.status_code == 303
    second = step_keys(system)[1]

    async def s1_fired() -> list:
        return await fetch(
            system,
            "SELECT * FROM alert_steps WHERE alert_id = $1 AND step_key = $2",
            alert_id,
            second,
        )

    steps = await eventually(s1_fired, 5, "escalate now to fire the next step")
    assert steps[0]["status"] == "fired"
    assert "escalated now by user:lbh-dm1" in steps[0]["detail"]
    await eventually(
        lambda: bool(system.twilio.messages_to("+447700900011")), 5, "SMS to the missing unit"
    )

    r = await console.post(f"/console/alerts/{alert_id}/ack")
    assert r.status_code == 303
    acks = await fetch(system, "SELECT * FROM acknowledgements WHERE alert_id = $1", alert_id)
    assert [(a["user_id"], a["via"]) for a in acks] == [("lbh-dm1", "console")]
    page = await console.get(f"/console/alerts/{alert_id}")
    assert "You have acknowledged" in page.text and "A. Duty" in page.text


async def test_a_care_worker_cannot_open_another_homes_case(system: DevSystem) -> None:
    _, alert_id = await missing_child(system)  # placed at Oak House
    elm = Console(system)
    await elm.sign_in("elm-staff1")
    r = await elm.get(f"/console/alerts/{alert_id}")
    assert r.status_code == 403 and "another agency" in r.text
    r = await elm.post(f"/console/alerts/{alert_id}/ack")
    assert r.status_code == 403
    board = await elm.get("/console")
    assert str(alert_id) not in board.text


# --- care home forms ----------------------------------------------------------------------


async def test_absence_form_alerts_police_by_sms(system: DevSystem) -> None:
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    await place_high_risk_child(system, child)
    oak = Console(system)
    r = await oak.sign_in("oak-staff1")
    assert r.headers["location"] == "/console/care"
    page = await oak.get("/console/care")
    assert child in page.text
    event_id = str(uuid.uuid4())
    form = {
        "event_id": event_id,
        "child_id": child,
        "last_seen_at": "",
        "last_seen_location": "Outside Oak House",
        "circumstances": "Left with an unknown adult in a grey car",
        "clothing": "Blue hoodie",
    }
    r = await oak.post("/console/care/absence", form)
    assert r.status_code == 303, r.text
    await eventually(
        lambda: any(child in m.body for m in system.twilio.messages_to("+447700900010")),
        5,
        "the police control room's SMS",
    )
    again = await oak.post("/console/care/absence", form)  # a double click
    assert again.status_code == 303
    events = await fetch(system, "SELECT event_id FROM events WHERE child_id = $1", child)
    assert [e["event_id"] for e in events].count(uuid.UUID(event_id)) == 1


async def test_care_form_errors_are_shown_and_nothing_is_written(system: DevSystem) -> None:
    child = f"LBH-2026-{uuid.uuid4().int % 10**6:06d}"
    await place_high_risk_child(system, child)
    oak = Console(system)
    await oak.sign_in("oak-staff1")
    await oak.get("/console/care")
    future = (
        (datetime.now(UTC) + timedelta(hours=2))
        .astimezone(system_zone(system))
        .strftime("%Y-%m-%dT%H:%M")
    )
    before = await fetch(system, "SELECT count(*) AS n FROM events")
    r = await oak.post(
        "/console/care/absence",
        {"child_id": child, "last_seen_at": future, "clothing": "x" * 5000},
    )
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and "Nothing was sent" in r.text
    assert "ahead of the server clock" in r.text  # last seen in the future
    assert "at most 500 characters" in r.text  # clothing too long
    after = await fetch(system, "SELECT count(*) AS n FROM events")
    assert after[0]["n"] == before[0]["n"]


def system_zone(system: DevSystem):
    from zoneinfo import ZoneInfo

    return ZoneInfo(system.config["timezone"])


# --- acknowledgement by email link --------------------------------------------------------


async def test_email_link_shows_on_get_and_acknowledges_only_on_post(system: DevSystem) -> None:
    child, alert_id = await missing_child(system)
    mails: list = []

    def mail_arrived() -> bool:
        mails[:] = [
            m for m in system.smtp.messages if "cr@mps.example" in m.rcpt_tos and child in m.body
        ]
        return bool(mails)

    await eventually(mail_arrived, 5, "the control room's email")
    link = LINK.search(mails[0].body).group(1)
    assert link.startswith(system.api_url + "/ack/")
    path = link.removeprefix(system.api_url)
    anyone = Console(system)  # no session: the link is the credential

    for _ in range(3):  # a mail scanner's prefetches
        shown = await anyone.get(path)
        assert shown.status_code == 200 and child in shown.text and "confirm-ack" in shown.text
    assert await fetch(system, "SELECT 1 FROM acknowledgements WHERE alert_id = $1", alert_id) == []

    done = await anyone.post(path, csrf=False)
    assert done.status_code == 200
    assert "Acknowledged as Metropolitan Police control room" in done.text
    acks = await fetch(system, "SELECT * FROM acknowledgements WHERE alert_id = $1", alert_id)
    assert [(a["contact_id"], a["via"]) for a in acks] == [("mps-cr", "email")]

    for reuse in (anyone.post(path, csrf=False), anyone.get(path)):
        r = await reuse
        assert r.status_code == 410 and "already used" in r.text
    acks = await fetch(system, "SELECT * FROM acknowledgements WHERE alert_id = $1", alert_id)
    assert len(acks) == 1


async def test_expired_or_forged_links_acknowledge_nothing(system: DevSystem) -> None:
    _, alert_id = await missing_child(system)
    notes = await fetch(
        system,
        "SELECT notification_id FROM notifications WHERE alert_id = $1 AND channel = 'email'",
        alert_id,
    )
    links = AckLinks(system.env["GOLDENHOUR_SECRET_KEY"], system.api_url, 24 * 3600)
    two_days_ago = time.time() - 2 * 24 * 3600
    with mock.patch("itsdangerous.timed.time.time", return_value=two_days_ago):
        expired = links.url(notes[0]["notification_id"]).removeprefix(system.api_url)
    forged = AckLinks("another secret " * 3, system.api_url, 3600).url(notes[0]["notification_id"])
    anyone = Console(system)
    r = await anyone.get(expired)
    assert r.status_code == 410 and "expired" in r.text
    r = await anyone.post(expired, csrf=False)
    assert r.status_code == 410
    r = await anyone.post(forged.removeprefix(system.api_url), csrf=False)
    assert r.status_code == 410 and "not valid" in r.text
    assert await fetch(system, "SELECT 1 FROM acknowledgements WHERE alert_id = $1", alert_id) == []


async def test_set_password_refuses_unknown_users_and_weak_passwords(system: DevSystem) -> None:
    unknown = run_set_password(system, "nobody-here", PASSWORD)
    assert unknown.returncode != 0 and "no user 'nobody-here'" in unknown.stderr
    weak = run_set_password(system, "mps-cr1", "short")
    assert weak.returncode != 0 and "at least 12 characters" in weak.stderr
    # The weak attempt changed nothing: the old password still signs in.
    assert (await Console(system).sign_in("mps-cr1")).status_code == 303
