"""The words of a rota's own messages: the handover briefing fits one SMS however many alerts
are held, most recent first, and says how many it leaves to the console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from goldenhour.wording.messages import SMS_BODY_MAX
from goldenhour.wording.rotas import Held, briefing_email, briefing_sms, gap_email

LONDON = ZoneInfo("Europe/London")
NIGHT = datetime(2026, 12, 5, 1, 30, tzinfo=UTC)


def held(n: int) -> list[Held]:
    return [
        Held(f"LBH-2026-{n:04d}", "missing", "high", NIGHT - timedelta(minutes=10 * n), f"{n:06d}")
        for n in range(1, n + 1)
    ]


def test_a_briefing_lists_the_alerts_held_most_recent_first() -> None:
    text = briefing_sms("duty_manager", "LBH", held(2), LONDON)
    assert text.startswith("GOLDEN HOUR HANDOVER: you are on call now as LBH duty manager.")
    assert text.index("LBH-2026-0001") < text.index("LBH-2026-0002")
    assert "LBH-2026-0001 missing since 01:20 05/12 ACK 000001" in text
    assert "more in the console" not in text


@given(st.integers(min_value=1, max_value=200))
def test_a_briefing_fits_one_sms_and_counts_what_it_leaves_out(n: int) -> None:
    text = briefing_sms("duty_manager", "LBH", held(n), LONDON)
    assert len(text) <= SMS_BODY_MAX
    shown = text.count("ACK 0")
    assert shown >= 1
    if shown < n:
        assert f"+{n - shown} more in the console" in text


def test_the_email_lists_every_alert_held() -> None:
    subject, body = briefing_email("duty_manager", "LBH", held(30), LONDON)
    assert "30 open alert(s)" in subject
    assert all(f"LBH-2026-{n:04d}" in body for n in range(1, 31))


def test_a_gap_notice_names_the_stretch_and_the_fallback() -> None:
    subject, body = gap_email(
        "lbh-duty-rota",
        "duty_manager",
        "LBH",
        NIGHT,
        NIGHT + timedelta(hours=8),
        "lbh-head",
        LONDON,
    )
    assert "nobody is on call as duty manager from 01:30 05/12" in subject
    assert "to 09:30 05/12" in body and "lbh-head" in body
