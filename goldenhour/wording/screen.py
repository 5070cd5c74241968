"""A screen for the free text that SMS, voice calls and shared alerts carry: text that mentions
nationality or immigration status, or reads like an instruction of our own ("STAND DOWN"), is
withheld from them, never refused at intake.

A report of a missing child is never refused for its wording, so the screen works on what goes
out, not on what comes in: the child's record and the email to the child's own agencies keep
the text as typed. It matches a word list (immigration and NRM terms, demonyms and the
commonest countries of origin); it is a backstop, not a guarantee.

Names cannot be detected reliably (any word may be a name, and most names are also ordinary
words), so the screen does not try: the console's forms and the API documentation tell
reporters never to type a child's name or nationality in free text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

WITHHELD = "see the case in Golden Hour"
"""What an SMS or a shared alert says in place of a text the screen withheld."""

STATUS_TERMS = (
    r"nrm",
    r"national referral mechanism",
    r"reasonable grounds",
    r"conclusive grounds",
    r"asylum\w*",
    r"home ?office",
    r"ukvi",
    r"border force",
    r"immigra\w*",
    r"emigra\w*",
    r"migrant\w*",
    r"visas?",
    r"deport\w*",
    r"removal centre",
    r"detention centre",
    r"refugee\w*",
    r"stateless",
    r"nationalit\w*",
    r"foreign nationals?",
    r"citizenship",
    r"passports?",
    r"leave to remain",
    r"indefinite leave",
    r"right to remain",
    r"overstay\w*",
    r"undocumented",
    r"illegal entr\w*",
    r"biometric residence",
    r"brp",
)
"""Immigration and NRM status, as regular-expression words (matched whole, case-folded)."""

OWN_WORDS = (
    r"golden hour",
    r"stand(?:ing)? down",
    r"stood down",
    r"no (?:further )?action",
    r"reply ack",
    r"ack \d+",
    r"cancell?ed",
    r"(?:child|she|he) (?:is |was |has been )?(?:found|located|returned)",
    r"(?:is|now) safe",
    r"safe (?:and well|at home|with)",
    r"safe with",
    r"call(?:ed|ing)? off",
    r"do not (?:attend|respond|search)",
    r"no need",
    r"all units",
    r"all clear",
    r"false alarm",
    r"back (?:at )?home",
    r"returned (?:home|safe\w*)",
    r"stop (?:the )?search\w*",
    r"(?:not|no longer) missing",
    r"in error",
    r"test message",
    r"update from",
    r"disregard",
    r"ignore\w*",
    r"resolved",
)
"""What our own messages say to stand a reader down: a location saying it could stop a search."""

# pycountry carries country names but no demonyms, so the list is our own: the demonyms of
# the world's states (UN members and observers, a few territories and peoples a child may be
# said to belong to), and the countries of origin most often recorded for children referred to
# the NRM, since "from Eritrea" tells as much as "Eritrean".
DEMONYMS = """
afghan, afghani, albanian, algerian, american, andorran, angolan, antiguan, argentine,
argentinian, armenian, australian, austrian, azerbaijani, azeri, bahamian, bahraini,
bangladeshi, barbadian, belarusian, belgian, belizean, beninese, bhutanese, bolivian, bosnian,
botswanan, brazilian, british, bruneian, bulgarian, burkinabe, burmese, burundian, cambodian,
cameroonian, canadian, cape verdean, central african, chadian, chilean, chinese, colombian,
comoran, congolese, costa rican, croatian, cuban, cypriot, czech, danish, djiboutian,
dominican, dutch, east timorese, ecuadorian, egyptian, emirati, english, equatoguinean,
eritrean, estonian, ethiopian, fijian, filipino, finnish, french, gabonese, gambian, georgian,
german, ghanaian, greek, grenadian, guatemalan, guinean, guyanese, haitian, honduran,
hungarian, icelandic, indian, indonesian, iranian, iraqi, irish, israeli, italian, ivorian,
jamaican, japanese, jordanian, kazakh, kazakhstani, kenyan, kosovan, kosovar, kurdish, kurd,
kuwaiti, kyrgyz, lao, laotian, latvian, lebanese, liberian, libyan, lithuanian,
luxembourgish, macedonian, malagasy, malawian, malaysian, maldivian, malian, maltese,
marshallese, mauritanian, mauritian, mexican, micronesian, moldovan, monegasque, mongolian,
montenegrin, moroccan, mozambican, namibian, nauruan, nepalese, nepali, nicaraguan, nigerian,
nigerien, north korean, norwegian, omani, pakistani, palauan, palestinian, panamanian,
papua new guinean, paraguayan, peruvian, polish, portuguese, qatari, roma, romani, romanian,
russian, rwandan, saint lucian, salvadoran, samoan, saudi, scottish, senegalese, serbian,
seychellois, sierra leonean, singaporean, slovak, slovakian, slovenian, somali, somalian,
south african, south korean, south sudanese, spanish, sri lankan, sudanese, surinamese, swazi,
swedish, swiss, syrian, taiwanese, tajik, tajikistani, tanzanian, thai, tigrayan, togolese,
tongan, trinidadian, tunisian, turkish, turkmen, tuvaluan, ugandan, ukrainian, uruguayan,
uzbek, vanuatuan, venezuelan, vietnamese, welsh, yemeni, zambian, zimbabwean,
albania, vietnam, viet nam, eritrea, sudan, afghanistan, iran, iraq, kurdistan, nigeria,
romania, ethiopia, syria, egypt, somalia, china
"""
"""Demonyms and countries of origin, comma-separated (an entry may be more than one word)."""

# Place names a demonym is part of: a location there must still reach the police.
PLACES = (
    "swiss cottage",
    "new england",
    "indian queens",
    "french hay",
    "english bridge",
    "english martyrs",
    "welsh harp",
    "china hall",
    "greek street",
    "spanish place",
    "french place",
)
# A demonym before one of these is a place (a street, a museum, a shop), not the child's
# nationality: "outside the Turkish restaurant on Green Lanes" must still reach the police.
PLACE_NOUNS = (
    "street", "st", "road", "rd", "place", "lane", "yard", "square", "row", "gardens",
    "museum", "library", "church", "embassy", "consulate", "centre", "center", "hall",
    "restaurant", "cafe", "shop", "shops", "supermarket", "market", "bakery", "takeaway",
    "pub", "bar", "school", "college", "mosque", "temple", "club", "grocer", "grocers",
)  # fmt: skip

_STATUS = re.compile(r"\b(?:" + "|".join(STATUS_TERMS + OWN_WORDS) + r")s?\b")


def _demonym_pattern(entries: str) -> re.Pattern[str]:
    words = sorted({" ".join(e.split()) for e in entries.split(",") if e.strip()}, key=len)
    alternatives = "|".join(re.escape(w) for w in reversed(words))
    nouns = "|".join(PLACE_NOUNS)
    return re.compile(r"\b(?:" + alternatives + r")s?\b(?! (?:" + nouns + r")\b)")


_DEMONYM = _demonym_pattern(DEMONYMS)


def _joined_initials(words: str) -> str:
    """Each run of single letters also as every word it could spell, so "N.R.M." reads as
    "nrm" too, and so does "a N.R.M. referral"."""

    def spellings(run: re.Match[str]) -> str:
        letters = run[0].replace(" ", "")
        joined = {letters[i:j] for i in range(len(letters)) for j in range(i + 2, len(letters) + 1)}
        return " ".join([run[0], *sorted(joined)])

    return re.sub(r"\b\w(?: \w\b)+", spellings, words)


def _script(char: str) -> str:
    return unicodedata.name(char, "").split(" ", 1)[0]


# Scripts with letters that look like Latin ones: a word in them may be a word of the lists in
# disguise ("\u0455\u043e\u043c\u0430\u04cf\u0456" reads "somali").
LOOKALIKE_SCRIPTS = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"})


def mixes_scripts(text: str) -> bool:
    """Whether a word mixes Latin letters with letters of another script ("Eritr\u0435an" with
    a Cyrillic e reads as the word it imitates but matches no list), or is in a script whose
    letters look Latin. A place name in Arabic script is left alone."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text))
    # Modifier letters (the apostrophe of King\u02bcs Cross) belong to no script of their own.
    scripts_of = [
        {_script(c) for c in w if c.isalpha() and unicodedata.category(c) != "Lm"} for w in words
    ]
    for scripts in scripts_of:
        if "LATIN" in scripts and len(scripts) > 1:
            return True
        if scripts & LOOKALIKE_SCRIPTS:
            return True
    return False


def _comparable(text: str) -> str:
    """The text as the word list sees it: compatibility-folded, case-folded, invisible format
    characters gone (so "N\u200bRM" is "nrm"), everything but letters and digits a space, and
    runs of initials also joined up."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    # Accents, combining marks and invisible format characters gone: "\u00c9ritrean" and
    # "Erit\u034frean" read as "eritrean"; a dotless i as an i.
    plain = "".join(c for c in folded if unicodedata.category(c) not in ("Mn", "Cf"))
    plain = plain.replace("\u0131", "i")
    # Letters apart from digits: "NRM2" reads "nrm 2".
    spaced = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", plain)
    words = _joined_initials(re.sub(r"[\W_]+", " ", spaced))
    for place in PLACES:
        words = re.sub(rf"\b{place}\b", " ", words)
    return f" {words} "


def mentions_status(text: str) -> bool:
    """Whether `text` mentions nationality or immigration or NRM status, or says what our own
    messages say, by the word lists."""
    words = _comparable(text)
    return bool(_STATUS.search(words) or _DEMONYM.search(words) or mixes_scripts(text))


@dataclass(frozen=True)
class Screened:
    """A text as it may go out, and whether the screen withheld what was typed."""

    text: str | None
    withheld: bool = False


def screen(text: str | None, instead: str | None = WITHHELD) -> Screened:
    """`text` if it may go out in an SMS or a shared alert; else `instead`, marked withheld."""
    if text is None or not mentions_status(text):
        return Screened(text)
    return Screened(instead, withheld=True)
