"""Whose episodes each organisation's figures count: the rule of who sees a child's alerts."""

from __future__ import annotations

import pytest

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.dev.london import directory
from goldenhour.reports.figure_store import Scope
from goldenhour.services.access import Refusal, figures_scope

CONFIG = GoldenHourConfig.model_validate(directory()[0])


def org(code: str) -> Organisation:
    found = CONFIG.org(code)
    assert found is not None
    return found


def test_an_authority_counts_its_own_children_only() -> None:
    assert figures_scope(CONFIG, org("LBH"), None) == Scope(frozenset({"LBH"}))
    assert figures_scope(CONFIG, org("LBH"), "LBH") == Scope(frozenset({"LBH"}))
    with pytest.raises(Refusal, match="LBI's figures are not LBH's"):
        figures_scope(CONFIG, org("LBH"), "LBI")


def test_a_police_force_counts_the_authorities_it_covers() -> None:
    assert figures_scope(CONFIG, org("MPS"), None) == Scope(frozenset({"LBH", "LBI"}))
    assert figures_scope(CONFIG, org("MPS"), "LBI") == Scope(frozenset({"LBI"}))


def test_a_care_home_counts_the_children_placed_with_it_and_a_national_unit_all() -> None:
    assert figures_scope(CONFIG, org("OAK"), None) == Scope(None, care_home="OAK")
    assert figures_scope(CONFIG, org("OAK"), "LBI") == Scope(frozenset({"LBI"}), care_home="OAK")
    assert figures_scope(CONFIG, org("UKMPU"), None) == Scope(None)
    assert figures_scope(CONFIG, org("UKMPU"), "LBI") == Scope(frozenset({"LBI"}))


@pytest.mark.parametrize(
    "kind", [OrgKind.immigration_enforcement, OrgKind.ngo], ids=lambda k: k.value
)
def test_immigration_enforcement_and_an_ngo_count_nothing(kind: OrgKind) -> None:
    other = Organisation(code="XYZ", kind=kind)
    for authority in (None, "LBH"):
        with pytest.raises(Refusal):
            figures_scope(CONFIG, other, authority)
