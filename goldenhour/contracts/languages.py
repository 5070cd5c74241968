"""The languages a shared alert may name: a closed list, never what was typed.

A child's record keeps its languages as typed; what goes to a neighbour is the ISO 639 name of a
language this list knows, or nothing. The list is the languages with a two-letter ISO 639-1 code
(the major languages: no personal names or status words hide among them, as they do among the
7,900 of ISO 639-3, where "Ali", "Sara" and "NRM" are languages) and the ISO 639-3 languages
most often spoken by children referred to the NRM, with the names people use for them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pycountry

# ISO 639-3 languages without a two-letter code that these children often speak.
EXTRA_CODES = ("prs", "yue", "cmn", "ckb", "kmr", "pcm", "syl", "npi", "apc", "arz", "aii")

# What people call a language, where ISO 639's English name differs.
ALIASES = {
    "pashto": "pus",
    "pashtu": "pus",
    "farsi": "fas",
    "dari": "prs",
    "punjabi": "pan",
    "cantonese": "yue",
    "mandarin": "cmn",
    "greek": "ell",
    "nepali": "nep",
    "malay": "msa",
    "swahili": "swa",
    "sorani": "ckb",
    "kurmanji": "kmr",
    "kurdish": "kur",
    "pidgin": "pcm",
    "sylheti": "syl",
    "albanian": "sqi",
    "romanian": "ron",
    "vietnamese": "vie",
}


@cache
def _names() -> dict[str, str]:
    """Every accepted spelling, case-folded, to the language's ISO 639 English name."""
    known: dict[str, str] = {}

    def add(language: Any) -> None:  # a pycountry record: the library has no types
        name = language.name
        for spelling in (name, getattr(language, "alpha_2", None), language.alpha_3):
            if spelling:
                known[spelling.casefold()] = name

    for language in pycountry.languages:
        if getattr(language, "alpha_2", None) or language.alpha_3 in EXTRA_CODES:
            add(language)
    for alias, code in ALIASES.items():
        language = pycountry.languages.get(alpha_3=code)
        if language is not None:
            known[alias] = language.name
    return known


def shared_language(typed: str) -> str | None:
    """The ISO 639 name of the language `typed` names (`ti`, `Tigrinya`, `Farsi`), or None."""
    return _names().get(" ".join(typed.split()).casefold())
