"""Who may submit what about which child, and who may see a child's alerts. Pure rules."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.config import GoldenHourConfig, Organisation, OrgKind

CARE_HOME_EVENTS = frozenset(
    {"checkin.recorded", "absence.reported", "child.located", "risk.signal"}
)
IDENTIFIERS = frozenset({OrgKind.local_authority, OrgKind.police, OrgKind.ngo, OrgKind.national})


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


def check_submit(
    org: Organisation, event_type: str, child: ChildAgencies | None, placement_id: str | None = None
) -> None:
    """Raise Refusal unless `org` may submit `event_type` for this child (None: not yet known)."""
    if org.kind == OrgKind.immigration_enforcement:
        raise Refusal("this organisation may not submit child data")
    if child is None:
        if event_type != "child.identified":
            raise Refusal("unknown child: record child.identified first")
        if org.kind not in IDENTIFIERS:
            raise Refusal(f"a {org.kind.value} may not record an identification")
        return
    if org.kind == OrgKind.care_home:
        if event_type not in CARE_HOME_EVENTS:
            raise Refusal(f"a care home may not submit {event_type}")
        if child.care_home != org.code:
            raise Refusal("this child is not placed with your care home")
        if placement_id is not None and placement_id != child.placement_id:
            raise Refusal(f"placement {placement_id} is not this child's current placement")
        return
    if not may_see(org, child):
        raise Refusal("your organisation does not act for this child")
    if event_type == "placement.started" and org.kind not in (
        OrgKind.local_authority,
        OrgKind.national,
    ):
        raise Refusal("only the child's local authority records a placement")


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
