"""What a neighbour may read of a child's languages: ISO 639 names, never the typed text."""

from __future__ import annotations

import pytest

from goldenhour.contracts.languages import shared_language


@pytest.mark.parametrize(
    ("typed", "shared"),
    [
        ("ti", "Tigrinya"),
        (" tigrinya ", "Tigrinya"),
        ("vi", "Vietnamese"),
        ("Farsi", "Persian"),
        ("Dari", "Dari"),
        ("Pashto", "Pushto"),
        ("Sorani", "Central Kurdish"),
        ("Arabic", "Arabic"),
    ],
)
def test_a_language_is_shared_by_its_iso_639_name(typed: str, shared: str) -> None:
    assert shared_language(typed) == shared


@pytest.mark.parametrize(
    "typed",
    [
        "Amira Tesfaye, Eritrean, NRM referral pending",
        "Eritrean",
        "NRM",  # Norman, in ISO 639-3
        "Ali",  # a language of ISO 639-3, and a name
        "Sara",
        "Sudanese Arabic",
        "speaks to her trafficker",
    ],
)
def test_what_is_not_a_known_language_is_never_shared(typed: str) -> None:
    assert shared_language(typed) is None
