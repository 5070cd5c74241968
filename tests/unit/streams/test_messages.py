"""The words of the messages: short enough, complete, and never a name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from streams.messages import SMS_MAX, AlertFacts, email_alert, sms_alert, sms_closed

LONDON = ZoneInfo("Europe/London")
SEEN = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)


def facts(**kw) -> AlertFacts:
    base = dict(
        alert_id="a1",
        child_id="LBH-2026-0042",
        kind="missing",
        risk_level="high",
        anchor_at=SEEN,
        last_seen_location="Mare Street bus stop",
        ack_code="4821",
    )
    base.update(kw)
    return AlertFacts(**base)


def test_sms_carries_reference_risk_time_place_and_ack_code():
    text = sms_alert(facts(), "s0", SEEN + timedelta(minutes=3), LONDON, 3)
    assert text.startswith("GOLDEN HOUR ALERT")
    for part in (
        "LBH-2026-0042",
        "HIGH",
        "21:40",
        "Mare Street bus stop",
        "Reply ACK 4821",
        "3 min ago",
    ):
        assert part in text


def test_sms_shows_local_time_across_the_clock_change():
    summer = datetime(2026, 7, 1, 20, 40, tzinfo=UTC)
    assert "21:40" in sms_alert(facts(anchor_at=summer), "s0", summer, LONDON, 3)


def test_headlines_by_step():
    assert "ESCALATION" in sms_alert(facts(), "s1", SEEN, LONDON, 3)
    assert "REMINDER 2/3" in sms_alert(facts(), "r2", SEEN, LONDON, 3)


@given(st.text(min_size=0, max_size=2000))
def test_sms_never_exceeds_320_and_keeps_the_ack_code(place):
    text = sms_alert(facts(last_seen_location=place or None), "r3", SEEN, LONDON, 3)
    assert len(text) <= SMS_MAX
    assert text.endswith("Reply ACK 4821 when you are acting on it.")


def test_stand_down_sms():
    text = sms_closed(facts(), SEEN + timedelta(hours=2), "found_safe", LONDON)
    assert "STAND DOWN" in text and "LBH-2026-0042" in text and "found safe" in text
    assert len(text) <= SMS_MAX


def test_email_to_own_agencies_carries_more_but_no_name():
    subject, body = email_alert(
        facts(circumstances="Left with an unknown adult in a grey car", clothing="red hoodie"),
        "s0",
        SEEN + timedelta(minutes=5),
        LONDON,
        3,
    )
    assert "LBH-2026-0042" in subject
    assert "unknown adult" in body and "red hoodie" in body and "ACK 4821" in body
    # The facts hold no name field at all: the case reference is the only identifier.
    assert not [f for f in AlertFacts.__dataclass_fields__ if "name" in f and "_name" not in f]


def test_email_offers_its_acknowledgement_link_and_the_sms_reply():
    link = "https://goldenhour.example/ack/abc.def"
    _, body = email_alert(facts(), "s0", SEEN, LONDON, 3, ack_url=link)
    assert f"open:\n{link}\nor reply to the SMS with: ACK 4821" in body
    _, without = email_alert(facts(), "s0", SEEN, LONDON, 3)
    assert "/ack/" not in without and "To acknowledge, reply to the SMS with: ACK 4821" in without
