"""Which reply codes acknowledge, and when wrong ones stop being checked; Twilio switched off;
replay digests."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from goldenhour.infra.settings import Settings
from goldenhour.notifiers.base import OutboundMessage, PermanentSendError
from goldenhour.notifiers.channels import SwitchedOff, twilio_channels
from goldenhour.services.ack_codes import PER_ALERT, PER_NUMBER, ToldAlert, judge
from goldenhour.services.twilio_replays import callback_digest

HACKNEY = ToldAlert(uuid.uuid4(), "LBH-2026-0042", "482193", "lbh-duty", "LBH")
OTHER = ToldAlert(uuid.uuid4(), "LBH-2026-0043", "730118", "lbh-duty", "LBH")


def test_the_right_code_of_a_told_alert_acknowledges_it():
    verdict = judge("730118", [HACKNEY, OTHER], 1, {})
    assert verdict.outcome == "acknowledge" and verdict.alert == OTHER


def test_a_code_of_no_told_alert_is_wrong():
    assert judge("482194", [HACKNEY], 1, {HACKNEY.alert_id: 1}).outcome == "wrong"
    assert judge("482193", [], 1, {}).outcome == "wrong"


@pytest.mark.parametrize("tries", [PER_NUMBER + 1, PER_NUMBER + 50])
def test_a_number_past_its_limit_is_not_checked(tries):
    assert judge("482193", [HACKNEY], tries, {}).outcome == "limited"


def test_a_number_at_its_limit_is_still_checked():
    assert judge("482193", [HACKNEY], PER_NUMBER, {}).outcome == "acknowledge"


def test_an_alert_past_its_limit_is_not_checked_and_its_answer_tells_nothing():
    locked = {HACKNEY.alert_id: PER_ALERT + 1}
    right = judge("482193", [HACKNEY], 1, locked)
    wrong = judge("000000", [HACKNEY], 1, locked)
    assert right == wrong and right.outcome == "limited"
    # Another alert the number was told of is still open to its code.
    assert judge("730118", [HACKNEY, OTHER], 1, locked).alert == OTHER


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings(GOLDENHOUR_CONFIG=tmp_path / "none.yaml", **env)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER"),
        ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_FROM_NUMBER": "+447700900999"}, "TWILIO_AUTH_TOKEN"),
        (
            {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "  ", "TWILIO_FROM_NUMBER": "+4477"},
            "TWILIO_AUTH_TOKEN",
        ),
    ],
)
def test_twilio_with_a_credential_missing_refuses_to_start(tmp_path, env, named):
    with pytest.raises(SystemExit, match=f"goldenhour: {named} is empty"):
        _settings(tmp_path, **env).require_twilio()


def test_twilio_switched_off_starts_without_credentials(tmp_path):
    settings = _settings(tmp_path, GOLDENHOUR_TWILIO_ENABLED="false")
    settings.require_twilio()
    assert not settings.twilio_ready


async def test_switched_off_twilio_fails_each_message_for_good(tmp_path):
    channels = twilio_channels(_settings(tmp_path, GOLDENHOUR_TWILIO_ENABLED="false"))
    assert set(channels) == {"sms", "voice"}
    msg = OutboundMessage("n1", "a:s0:c:sms", "+447700900001", "", "body")
    for channel in channels.values():
        assert isinstance(channel, SwitchedOff)
        with pytest.raises(PermanentSendError, match="Twilio is switched off"):
            await channel.send(msg)
        assert await channel.find_sent(msg) is None


def test_a_replay_has_the_digest_of_its_original_and_any_change_another():
    url = "https://gh.example/api/v1/webhooks/twilio/inbound"
    form = {"From": "+447700900001", "Body": "ACK 482193", "MessageSid": "SM1"}
    assert callback_digest(url, form) == callback_digest(url, dict(reversed(form.items())))
    assert callback_digest(url, form) != callback_digest(url, {**form, "MessageSid": "SM2"})
    assert callback_digest(url, form) != callback_digest(url + "?n=1", form)


def test_the_local_twilio_refuses_an_empty_auth_token():
    from goldenhour.dev.twilio_local import LocalTwilio

    with pytest.raises(ValueError, match="auth_token"):
        LocalTwilio("AC" + "0" * 32, "")
