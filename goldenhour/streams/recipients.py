"""Resolve a policy's `kind.role` recipients to the contacts of one child's agencies, and of a
role with a rota to whoever is on call when the step fires.

A child's agencies are its local authority (from `child.identified`), that authority's police
force, its current care home (from `placement.started`) and the national organisations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from goldenhour.contracts.config import GoldenHourConfig, OrgKind
from goldenhour.contracts.oncall import Changes, on_duty_contacts
from goldenhour.streams.escalation import Recipient


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


def resolver(
    config: GoldenHourConfig,
    local_authority: str,
    care_home: str | None,
    now: datetime | None = None,
    changes: Mapping[str, Changes] | None = None,
) -> Callable[[str], list[Recipient]]:
    """A function from `kind.role` to the contacts it names for this child at `now`: a role
    with a rota names who is on then, by the rotas' `changes` (streams/rota_changes.py)."""
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
            found.extend(
                Recipient(c.id, org.code, c.phone, str(c.email))
                for c in on_duty_contacts(config, org, role, now, changes)
            )
        return found

    return resolve
