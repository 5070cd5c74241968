"""Who may submit what for which child, and who sees its alerts."""

from __future__ import annotations

import pytest

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.dev.london import directory
from goldenhour.services.access import (
    ALREADY_IDENTIFIED,
    NOT_YOURS,
    Conflict,
    Refusal,
    agencies,
    check_identifier,
    check_submit,
    check_transfer,
    may_see,
)

CONFIG = GoldenHourConfig.model_validate(directory()[0])
CHILD = agencies(CONFIG, "LBH", "OAK", "P-1")


def org(code: str):
    found = CONFIG.org(code)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "event_type", ["absence.reported", "checkin.recorded", "child.located", "risk.signal"]
)
def test_care_home_reports_on_its_own_child(event_type):
    check_submit(org("OAK"), event_type, CHILD, "P-1")


@pytest.mark.parametrize(
    "code, event_type, placement, why",
    [
        ("OAK", "placement.started", None, "may not submit placement.started"),
        ("OAK", "child.transferred", None, "may not submit child.transferred"),
        ("OAK", "checkin.recorded", "P-2", "not this child's current placement"),
        ("MPS", "placement.started", None, "only the child's local authority"),
        ("MPS", "placement.ended", None, "only the child's local authority"),
        ("MPS", "child.transferred", None, "only the child's local authority or a national"),
    ],
)
def test_refusals_say_why(code, event_type, placement, why):
    with pytest.raises(Refusal, match=why):
        check_submit(org(code), event_type, CHILD, placement)


def test_unknown_child_needs_identification_first():
    check_submit(org("MPS"), "child.identified", None)
    with pytest.raises(Refusal, match="child.identified first"):
        check_submit(org("LBH"), "absence.reported", None)
    with pytest.raises(Refusal, match="may not record an identification"):
        check_submit(org("OAK"), "child.identified", None)


def refusal(code: str, event_type: str, child, placement: str | None = None) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check_submit(org(code), event_type, child, placement)
    return caught.value


@pytest.mark.parametrize(
    "code, event_type",
    [
        ("LBI", "absence.reported"),
        ("LBI", "placement.started"),
        ("LBI", "child.transferred"),
        ("ELM", "absence.reported"),
        ("ELM", "checkin.recorded"),
        # Whether a care home may submit this is said only to the home the child is placed at.
        ("ELM", "placement.started"),
    ],
)
def test_unknown_and_not_yours_children_get_one_answer(code, event_type):
    unknown = refusal(code, event_type, None)
    not_yours = refusal(code, event_type, CHILD)
    assert type(unknown) is type(not_yours) is Refusal
    assert str(unknown) == str(not_yours) == NOT_YOURS


@pytest.mark.parametrize("code", ["LBH", "LBI", "MPS", "UKMPU"])
def test_a_known_child_is_never_identified_again(code):
    with pytest.raises(Conflict, match="already identified") as caught:
        check_submit(org(code), "child.identified", CHILD)
    assert str(caught.value) == ALREADY_IDENTIFIED


def test_who_may_not_identify_hears_so_whether_or_not_the_child_exists():
    assert str(refusal("OAK", "child.identified", CHILD)) == str(
        refusal("OAK", "child.identified", None)
    )


@pytest.mark.parametrize("code", ["LBH", "UKMPU"])
def test_the_authority_or_a_national_unit_transfers_a_child(code):
    check_submit(org(code), "child.transferred", CHILD)
    check_transfer(CONFIG, CHILD, "LBI")


@pytest.mark.parametrize(
    "to, error, why",
    [
        ("NOPE", Refusal, "unknown local authority NOPE"),
        ("MPS", Refusal, "unknown local authority MPS"),
        ("OAK", Refusal, "unknown local authority OAK"),
        ("LBH", Conflict, "already with LBH"),
    ],
)
def test_a_transfer_goes_to_another_local_authority_of_the_directory(to, error, why):
    with pytest.raises(error, match=why):
        check_transfer(CONFIG, CHILD, to)


def test_police_of_the_authority_and_national_units_see_the_child():
    assert may_see(org("LBH"), CHILD) and may_see(org("MPS"), CHILD)
    assert may_see(org("OAK"), CHILD) and may_see(org("UKMPU"), CHILD)
    assert not may_see(org("LBI"), CHILD) and not may_see(org("ELM"), CHILD)


def test_immigration_enforcement_sees_and_submits_nothing():
    config = directory()[0]
    config["organisations"].append({"code": "HOIE", "kind": "immigration_enforcement"})
    hoie = GoldenHourConfig.model_validate(config).org("HOIE")
    assert hoie is not None
    assert not may_see(hoie, CHILD)
    with pytest.raises(Refusal):
        check_submit(hoie, "child.identified", None)


@pytest.mark.parametrize(
    ("code", "la", "why"),
    [
        ("LBH", "LBH", None),
        ("MPS", "LBI", None),  # MPS polices Islington too
        ("LBI", "LBH", "identifies its own children"),
        ("LBH", "ZZZ", "unknown local authority ZZZ"),
        ("LBH", "OAK", "unknown local authority OAK"),
        ("UKMPU", "LBI", None),
    ],
)
def test_who_may_identify_for_which_authority(code, la, why):
    """Asked before the child is looked at: nobody learns another authority's references."""
    if why is None:
        check_identifier(CONFIG, org(code), la, f"{la}-2026-0001")
        return
    with pytest.raises(Refusal, match=why):
        check_identifier(CONFIG, org(code), la, f"{la}-2026-0001")


def test_a_force_identifies_only_for_the_authorities_it_polices():
    raw = directory()[0]
    raw["organisations"].append({"code": "TVP", "kind": "police", "name": "Thames Valley"})
    config = GoldenHourConfig.model_validate(raw)
    with pytest.raises(Refusal, match="TVP does not police LBH"):
        check_identifier(config, config.org("TVP"), "LBH", "LBH-2026-0001")


def test_an_ngo_identifies_under_references_of_its_own():
    """So it can neither probe the authority's references nor take one first."""
    raw = directory()[0]
    raw["organisations"].append({"code": "NGO1", "kind": "ngo", "name": "First Responders"})
    config = GoldenHourConfig.model_validate(raw)
    ngo = config.org("NGO1")
    check_identifier(config, ngo, "LBH", "LBH-NGO1-2026-7")
    with pytest.raises(Refusal, match="own references"):
        check_identifier(config, ngo, "LBH", "LBH-2026-0043")


def test_a_reference_in_a_longer_authority_code_is_that_authoritys():
    raw = directory()[0]
    raw["organisations"].append(
        {"code": "LBH-N", "kind": "local_authority", "name": "Hackney North", "police": "MPS"}
    )
    config = GoldenHourConfig.model_validate(raw)
    with pytest.raises(Refusal, match="a case reference of LBH-N"):
        check_identifier(config, config.org("LBH"), "LBH", "LBH-N-2026-1")
