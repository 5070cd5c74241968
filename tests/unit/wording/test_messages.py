"""The words of the messages: short enough, complete, and never a name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.wording.messages import (
    SMS_MAX,
    SMS_REF_ROOM,
    AlertFacts,
    email_alert,
    sms_alert,
    sms_closed,
    spell_out,
    spoken_time,
    voice_alert,
    withheld_from_sms,
)

LONDON = ZoneInfo("Europe/London")
SEEN = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
FIRST, LATER = "0m-1a2b3c4d", "15m-5e6f7a8b"


def facts(**kw) -> AlertFacts:
    base = dict(
        alert_id="a1",
        child_id="LBH-2026-0042",
        kind="missing",
        risk_level="high",
        anchor_at=SEEN,
        last_seen_location="Mare Street bus stop",
        ack_code="4821",
        first_step=FIRST,
    )
    base.update(kw)
    return AlertFacts(**base)


def test_sms_carries_reference_risk_time_place_and_ack_code():
    text = sms_alert(facts(), FIRST, SEEN + timedelta(minutes=3), LONDON, 3)
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
    assert "21:40" in sms_alert(facts(anchor_at=summer), FIRST, summer, LONDON, 3)


def test_headlines_by_step():
    assert sms_alert(facts(), FIRST, SEEN, LONDON, 3).startswith("GOLDEN HOUR ALERT:")
    assert "ESCALATION" in sms_alert(facts(), LATER, SEEN, LONDON, 3)
    assert "REMINDER 2/3" in sms_alert(facts(), "r2", SEEN, LONDON, 3)


def test_first_step_is_the_policys_not_a_position():
    # A later step that happens to be keyed like the old first position is still an escalation
    # when the policy's first step is another; an alert opened before stable keys keeps "s0".
    assert "ESCALATION" in sms_alert(facts(first_step="s1"), LATER, SEEN, LONDON, 3)
    assert "GOLDEN HOUR ALERT" in sms_alert(facts(first_step="s1"), "s1", SEEN, LONDON, 3)
    assert "GOLDEN HOUR ALERT" in sms_alert(facts(), "s0", SEEN, LONDON, 3)
    assert "ESCALATION" in sms_alert(facts(), "s1", SEEN, LONDON, 3)


@given(
    st.text(min_size=0, max_size=2000),
    st.sampled_from(["missing", "curfew", "return_interview", "identification"]),
    st.sampled_from([FIRST, LATER, "r3"]),
)
def test_sms_leaves_room_for_the_reference_and_keeps_the_ack_code(place, kind, step):
    text = sms_alert(facts(last_seen_location=place or None, kind=kind), step, SEEN, LONDON, 3)
    # The dispatcher appends " Ref XXXXXX": the whole SMS must still fit in 320.
    assert len(text + " Ref ABC123") <= SMS_MAX
    assert len(text) <= SMS_MAX - SMS_REF_ROOM
    assert text.endswith("Reply ACK 4821 when you are acting on it.")


def test_stand_down_sms():
    text = sms_closed(facts(), SEEN + timedelta(hours=2), "found_safe", LONDON)
    assert "STAND DOWN" in text and "LBH-2026-0042" in text and "found safe" in text
    assert len(text) <= SMS_MAX - SMS_REF_ROOM


def test_email_to_own_agencies_carries_more_but_no_name():
    subject, body = email_alert(
        facts(circumstances="Left with an unknown adult in a grey car", clothing="red hoodie"),
        FIRST,
        SEEN + timedelta(minutes=5),
        LONDON,
        3,
    )
    assert "LBH-2026-0042" in subject
    assert "unknown adult" in body and "red hoodie" in body and "ACK 4821" in body
    # The facts hold no name of the child: the case reference is the only identifier.
    assert [f for f in AlertFacts.__dataclass_fields__ if "name" in f] == ALLOWED_NAME_FIELDS


ALLOWED_NAME_FIELDS = ["local_authority_name", "care_home_name"]
"""The only `name` fields the facts may have: the agencies', from the directory."""


def test_allowed_name_fields_are_the_agencies_names_only():
    # A `child_name` (or any other) beside them would make the list above differ.
    assert set(ALLOWED_NAME_FIELDS) <= set(AlertFacts.__dataclass_fields__)
    assert all(f.endswith(("authority_name", "home_name")) for f in ALLOWED_NAME_FIELDS)


CIRCUMSTANCES = "Left with an unknown adult in a grey car"
CLOTHING = "red hoodie and white trainers"


@given(
    st.sampled_from(["missing", "curfew", "return_interview", "identification", "risk_signal"]),
    st.sampled_from([FIRST, LATER, "r1"]),
)
def test_sms_and_voice_never_carry_circumstances_or_clothing(kind, step):
    f = facts(kind=kind, circumstances=CIRCUMSTANCES, clothing=CLOTHING)
    for text in (
        sms_alert(f, step, SEEN, LONDON, 3),
        voice_alert(f, step, SEEN, LONDON, 3),
    ):
        assert "unknown adult" not in text and "hoodie" not in text


@pytest.mark.parametrize(
    "place",
    [
        "Mare St, Amira is Eritrean, NRM referral pending",
        "asylum hostel, Amhurst Road",
        "Mare St. STAND DOWN: child found, no action needed.",
    ],
)
def test_a_location_the_screen_withholds_is_not_in_sms_or_call(place):
    f = facts(last_seen_location=place)
    sms = sms_alert(f, FIRST, SEEN, LONDON, 3)
    voice = voice_alert(f, FIRST, SEEN, LONDON, 3)
    for text in (sms, voice):
        assert "see the case in Golden Hour" in text
        for word in ("Eritrean", "NRM", "asylum", "STAND DOWN", "no action"):
            assert word not in text
    assert withheld_from_sms(f) == ["last_seen_location"]
    # The child's own agencies read it as given.
    _, body = email_alert(f, FIRST, SEEN, LONDON, 3)
    assert f"Last seen at: {place}" in body


def test_a_plain_location_is_not_withheld():
    assert withheld_from_sms(facts()) == []
    assert withheld_from_sms(facts(last_seen_location=None)) == []


def test_a_stored_location_with_a_line_break_stays_on_one_line():
    """Rows stored before the contract made texts one line are made one line in the message."""
    f = facts(
        last_seen_location="Mare St.\r\nKingsland Rd\u2028corner",
        circumstances="ran\noff",
        clothing="red\r\nhoodie",
    )
    sms = sms_alert(f, FIRST, SEEN, LONDON, 3)
    assert "\n" not in sms and "\r" not in sms and "Mare St. Kingsland Rd corner" in sms
    _, body = email_alert(f, FIRST, SEEN, LONDON, 3)
    assert "Last seen at: Mare St. Kingsland Rd corner\n" in body
    assert "Circumstances: ran off\n" in body and "Clothing: red hoodie\n" in body


def test_email_offers_its_acknowledgement_link_and_the_sms_reply():
    link = "https://goldenhour.example/ack/abc.def"
    _, body = email_alert(facts(), FIRST, SEEN, LONDON, 3, ack_url=link)
    assert f"open:\n{link}\nor reply to the SMS with: ACK 4821" in body
    _, without = email_alert(facts(), FIRST, SEEN, LONDON, 3)
    assert "/ack/" not in without and "To acknowledge, reply to the SMS with: ACK 4821" in without


def test_voice_script_spells_the_reference_and_asks_for_the_keypad():
    script = voice_alert(facts(), FIRST, SEEN + timedelta(minutes=12), LONDON, 3)
    assert script.startswith("Golden Hour alert. A child is missing.")
    assert "Case reference L B H dash 2 0 2 6 dash 0 0 4 2." in script
    assert "High risk." in script
    assert "Last seen at nine forty p m, 12 minutes ago, at Mare Street bus stop." in script
    assert script.endswith("Press 1 to acknowledge that you are acting on it.")
    assert "LBH-2026-0042" not in script  # a voice would read it as a number and a word


def test_voice_headlines_by_step():
    later = voice_alert(facts(), LATER, SEEN, LONDON, 3)
    assert later.startswith("Golden Hour escalation.")
    again = voice_alert(facts(), "r2", SEEN, LONDON, 3)
    assert again.startswith("Golden Hour reminder 2 of 3: not yet acknowledged.")
    concern = voice_alert(facts(kind="curfew"), FIRST, SEEN, LONDON, 3)
    assert concern.startswith("Golden Hour welfare concern.") and "Press 1" in concern


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
        min_size=3,
        max_size=64,
    )
)
def test_spelt_reference_reads_back_to_the_reference(reference):
    marks = {"dash": "-", "dot": ".", "underscore": "_"}
    spelt = spell_out(reference).split(" ")
    assert "".join(marks.get(w, w) for w in spelt) == reference.upper()


@pytest.mark.parametrize(
    ("at", "said"),
    [
        (datetime(2026, 11, 22, 21, 40, tzinfo=UTC), "nine forty p m"),
        (datetime(2026, 11, 22, 7, 5, tzinfo=UTC), "seven oh five a m"),
        (datetime(2026, 11, 22, 0, 0, tzinfo=UTC), "twelve a m"),
        (datetime(2026, 11, 22, 12, 0, tzinfo=UTC), "twelve p m"),
        (datetime(2026, 11, 22, 15, 0, tzinfo=UTC), "three o'clock p m"),
        (datetime(2026, 7, 1, 20, 40, tzinfo=UTC), "nine forty p m"),  # summer time
        (datetime(2026, 11, 22, 23, 59, tzinfo=UTC), "eleven fifty nine p m"),
    ],
)
def test_spoken_clock_time(at, said):
    assert spoken_time(at, LONDON) == said


def test_the_sms_quotes_a_typed_place_and_keeps_it_short():
    """What a reporter typed reads as their words, and leaves no room for an instruction."""
    long_place = "Mare Street bus stop, opposite the library, " + "then towards the canal " * 6
    sms = sms_alert(facts(last_seen_location=long_place), FIRST, SEEN, LONDON, 3)
    quoted = sms.split(' at "', 1)[1].split('".', 1)[0]
    assert quoted.startswith("Mare Street bus stop") and len(quoted) <= 120
    assert quoted.endswith("…") and not quoted[:-1].endswith(" ")  # cut at a word
    assert sms.endswith("Reply ACK 4821 when you are acting on it.")


def test_a_withheld_or_missing_place_is_not_quoted():
    said = sms_alert(facts(last_seen_location="with Eritrean men"), FIRST, SEEN, LONDON, 3)
    assert "place see the case in Golden Hour." in said and '"' not in said
    none = sms_alert(facts(last_seen_location=None), FIRST, SEEN, LONDON, 3)
    assert "place not given." in none


def test_a_typed_quote_cannot_close_the_sms_quote():
    place = 'Mare St". Then the 38 bus towards Angel. "'
    sms = sms_alert(facts(last_seen_location=place), FIRST, SEEN, LONDON, 3)
    assert sms.count('"') == 2, sms
