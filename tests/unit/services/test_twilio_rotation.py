"""Rotating TWILIO_AUTH_TOKEN: a callback signed with either token of the rotation holds."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from goldenhour.services.twilio_webhooks import signature_holds

URL = "https://goldenhour.example/api/v1/webhooks/twilio/status"
FORM = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"}
PRIMARY, SECONDARY, UNKNOWN = "p" * 32, "s" * 32, "u" * 32


def signed(token: str) -> str:
    return RequestValidator(token).compute_signature(URL, FORM)


def test_a_callback_signed_with_the_primary_token_holds():
    assert signature_holds((PRIMARY, SECONDARY), URL, FORM, signed(PRIMARY))


def test_a_callback_signed_with_the_secondary_token_holds():
    assert signature_holds((PRIMARY, SECONDARY), URL, FORM, signed(SECONDARY))


def test_a_callback_signed_with_another_token_is_refused():
    assert not signature_holds((PRIMARY, SECONDARY), URL, FORM, signed(UNKNOWN))


def test_without_a_secondary_only_the_primary_holds():
    assert not signature_holds((PRIMARY,), URL, FORM, signed(SECONDARY))


def test_a_changed_form_is_refused_whichever_token_signed_it():
    tampered = {**FORM, "MessageStatus": "failed"}
    assert not signature_holds((PRIMARY, SECONDARY), URL, tampered, signed(SECONDARY))
