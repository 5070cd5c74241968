"""Resolve a policy's `kind.role` recipients to the contacts of one child's agencies, and of a
role with a rota to whoever is on call when the step fires.

A child's agencies are its local authority (from `child.identified`), that authority's police
force, its current care home (from `placement.started`) and the national organisations.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from goldenhour.contracts.config import GoldenHourConfig, Organisation, OrgKind
from goldenhour.streams.escalation import Recipient
from goldenhour.streams.oncall import on_call


class FirewallViolation(RuntimeError):
    """A recipient list would have reached an organisation that may never receive child data."""


def child_orgs(config: GoldenHourConfig, local_authority: str, care_home: str | None) -> dict:
    """The organisation codes that act for one child, by kind."""
    la = config.org(local_authority)
    orgs: dict[str, list[str]] = {
        "local_authority": [local_authority],
        "police": [la.police] if la is not None and la.police else [],
        "care_home": [care_home] if care_home else [],
        "national": [o.code for o in config.organisations if o.kind == OrgKind.national],
    }
    return orgs


def on_duty(
    config: GoldenHourConfig, org: Organisation, role: str, now: datetime | None
) -> set[str] | None:
    """The ids of `org`'s contacts on call for `role` at `now` by its rota (its fallback when
    nobody is); None where no rota says (no rota of the role, or an instant it does not cover):
    then every contact of the role is."""
    rota = next((r for r in org.rotas if r.role == role), None)
    if rota is None or now is None:
        return None
    answer = on_call(rota, config.tz, now)
    return set(answer.members) if answer.covered else None


def resolver(
    config: GoldenHourConfig,
    local_authority: str,
    care_home: str | None,
    now: datetime | None = None,
) -> Callable[[str], list[Recipient]]:
    """A function from `kind.role` to the contacts it names for this child at `now`: a role
    with a rota names who is on then."""
    orgs = child_orgs(config, local_authority, care_home)

    def resolve(target: str) -> list[Recipient]:
        kind, _, role = target.partition(".")
        found: list[Recipient] = []
        for code in orgs.get(kind, []):
            org = config.org(code)
            if org is None:
                continue
            # Asserted where the list is built, whatever the config validation already refused.
            if org.kind == OrgKind.immigration_enforcement:
                raise FirewallViolation(f"recipient {target} resolved to {code}")
            on = on_duty(config, org, role, now)
            found.extend(
                Recipient(c.id, org.code, c.phone, str(c.email))
                for c in org.contacts
                if (c.id in on if on is not None else c.role == role)
            )
        return found

    return resolve
