"""Who may submit what about which child, and who may see a child's alerts. Pure rules."""

from __future__ import annotations

from dataclasses import dataclass

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.reports.figure_store import Scope

CARE_HOME_EVENTS = frozenset(
    {"checkin.recorded", "absence.reported", "child.located", "risk.signal"}
)
IDENTIFIERS = frozenset({OrgKind.local_authority, OrgKind.police, OrgKind.ngo, OrgKind.national})

# One answer for a child nobody recorded and a child the caller does not act for: which of the
# two it is would tell a prober that a case reference exists, and its existence is child data.
NOT_YOURS = (
    "no child with this case reference is yours to report on"
    " (a new child is recorded with child.identified first)"
)

ALREADY_IDENTIFIED = (
    "this child is already identified: a change of authority is child.transferred,"
    " a new risk assessment is placement.started risk or risk.signal"
)


@dataclass(frozen=True)
class ChildAgencies:
    """The organisations acting for one child now."""

    local_authority: str
    police: str | None
    care_home: str | None
    placement_id: str | None


def agencies(
    config: GoldenHourConfig, local_authority: str, care_home: str | None, placement_id: str | None
) -> ChildAgencies:
    """A child's local authority, that authority's police force and its current care home."""
    la = config.org(local_authority)
    return ChildAgencies(local_authority, la.police if la else None, care_home, placement_id)


class Refusal(Exception):
    """The caller may not do this; the message says why."""


class Conflict(Refusal):
    """The request contradicts what is recorded (a 409, not a 403); the message says what."""


def check_submit(
    org: Organisation, event_type: str, child: ChildAgencies | None, placement_id: str | None = None
) -> None:
    """Raise Refusal unless `org` may submit `event_type` for this child (None: not yet known).

    Until it is known that the caller acts for the child, every refusal is `NOT_YOURS`, so an
    unknown child and another agency's child cannot be told apart.
    """
    if org.kind == OrgKind.immigration_enforcement:
        raise Refusal("this organisation may not submit child data")
    if event_type == "child.identified":
        _check_identification(org, child)
        return
    if child is None:
        raise Refusal(NOT_YOURS)
    if org.kind == OrgKind.care_home:
        _check_care_home(org, event_type, child, placement_id)
        return
    if not may_see(org, child):
        raise Refusal(NOT_YOURS)
    if event_type in ("placement.started", "placement.ended") and org.kind not in (
        OrgKind.local_authority,
        OrgKind.national,
    ):
        # Ending one cuts the home off from its child: the police may not, only the authority.
        raise Refusal("only the child's local authority starts or ends a placement")
    if event_type == "child.transferred" and not (
        org.kind == OrgKind.national or org.code == child.local_authority
    ):
        raise Refusal("only the child's local authority or a national unit transfers a child")


def _check_identification(org: Organisation, child: ChildAgencies | None) -> None:
    # Who may identify is asked first: the answer must not depend on whether the child exists.
    if org.kind not in IDENTIFIERS:
        raise Refusal(f"a {org.kind.value} may not record an identification")
    if child is not None:
        # A second identification would silently move the child or lower its risk.
        raise Conflict(ALREADY_IDENTIFIED)


def _check_care_home(
    org: Organisation, event_type: str, child: ChildAgencies, placement_id: str | None
) -> None:
    if child.care_home != org.code:
        raise Refusal(NOT_YOURS)
    if event_type not in CARE_HOME_EVENTS:
        raise Refusal(f"a care home may not submit {event_type}")
    if placement_id is not None and placement_id != child.placement_id:
        raise Refusal(f"placement {placement_id} is not this child's current placement")


def check_identifier(
    config: GoldenHourConfig, org: Organisation, local_authority: str, child_id: str
) -> None:
    """Raise Refusal unless `org` may identify child `child_id` for `local_authority`: an
    authority for itself, a police force for the authorities it polices, national units for any,
    and an NGO first responder for any but under references of its own (`LBH-NGO1-…`), so it can
    neither probe nor take first the authority's. Asked before the child is looked at, so nobody
    learns whether another authority's case reference exists."""
    la = config.org(local_authority)
    if la is None or la.kind != OrgKind.local_authority:
        raise Refusal(f"unknown local authority {local_authority}")
    # "LB-H-1" is in the reference space of an authority "LB-H", not of "LB".
    longer = [
        o.code
        for o in config.organisations
        if len(o.code) > len(local_authority) and child_id.startswith(f"{o.code}-")
    ]
    if longer:
        raise Refusal(f"child_id {child_id} is a case reference of {longer[0]}")
    if org.kind == OrgKind.local_authority and org.code != local_authority:
        raise Refusal(f"a local authority identifies its own children, not {local_authority}'s")
    if org.kind == OrgKind.police and la.police != org.code:
        raise Refusal(f"{org.code} does not police {local_authority}")
    own = f"{local_authority}-{org.code}-"
    if org.kind == OrgKind.ngo and not child_id.startswith(own):
        raise Refusal(
            f"an NGO records the children it identifies under its own references ({own}…)"
        )


def check_transfer(config: GoldenHourConfig, child: ChildAgencies, to: str) -> None:
    """Raise Refusal unless `to` is a local authority of the directory other than the child's."""
    la = config.org(to)
    if la is None or la.kind != OrgKind.local_authority:
        raise Refusal(f"unknown local authority {to}")
    if to == child.local_authority:
        raise Conflict(f"this child is already with {to}")


def may_see(org: Organisation, child: ChildAgencies, care_home: str | None = None) -> bool:
    """The child's own agencies, and national units, see its alerts; nobody else does."""
    if org.kind == OrgKind.immigration_enforcement:
        return False
    if org.kind == OrgKind.national:
        return True
    return org.code in {child.local_authority, child.police, child.care_home, care_home} - {None}


def policed_by(config: GoldenHourConfig, org: Organisation) -> list[str]:
    """The local authorities whose police force is `org` (none unless it is a force)."""
    if org.kind != OrgKind.police:
        return []
    return [o.code for o in config.organisations if o.police == org.code]


def figures_scope(config: GoldenHourConfig, org: Organisation, authority: str | None) -> Scope:
    """Whose episodes `org` may count, narrowed to `authority` when it names one.

    As for alerts: an authority its own children, a police force those of the authorities it
    covers, a care home the children placed with it, a national unit all; immigration
    enforcement and an organisation acting for no child nothing (`Refusal`). An authority
    `org` does not act for is refused, not answered with zeros: a zero would be a false figure.
    """
    only = frozenset({authority}) if authority else None
    if org.kind == OrgKind.national:
        return Scope(only)
    if org.kind == OrgKind.care_home:
        return Scope(only, care_home=org.code)
    mine = frozenset(policed_by(config, org)) if org.kind == OrgKind.police else frozenset()
    if org.kind == OrgKind.local_authority:
        mine = frozenset({org.code})
    if not mine:
        raise Refusal(f"{org.code} acts for no child: it has no figures")
    if only is not None and not only <= mine:
        raise Refusal(f"{authority}'s figures are not {org.code}'s to see")
    return Scope(only or mine)
