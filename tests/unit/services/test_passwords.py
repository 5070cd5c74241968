"""Console passwords: argon2id, a minimum length, one answer for every wrong case."""

from __future__ import annotations

import pytest

from goldenhour.services import passwords


def test_a_hash_verifies_its_password_only():
    stored = passwords.hash_password("night shift at oak house")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "night shift at oak house")
    assert not passwords.verify(stored, "night shift at oak housE")


def test_no_stored_hash_never_verifies_even_the_dummy_password():
    assert not passwords.verify(None, "no such user: this hash only spends the same time")
    assert not passwords.verify(None, "")


def test_a_damaged_hash_is_a_failed_sign_in_not_a_crash():
    assert not passwords.verify("$argon2id$garbage", "whatever password")


@pytest.mark.parametrize("weak", ["short", " leading space pw", "trailing space pw "])
def test_weak_new_passwords_are_refused(weak):
    with pytest.raises(passwords.PasswordRefused):
        passwords.hash_password(weak)
