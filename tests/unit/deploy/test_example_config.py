"""The directory and policies the platform team starts from load as Golden Hour loads them."""

from __future__ import annotations

from goldenhour.contracts.config import OrgKind, load_config
from tests.unit.deploy.helpers import REPO

EXAMPLE = REPO / "infra" / "goldenhour.example.yaml"


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    kinds = {org.kind for org in config.organisations}
    assert {OrgKind.local_authority, OrgKind.police, OrgKind.care_home} <= kinds
    assert set(config.policies) == {"high", "medium", "low", "identification"}


def test_every_recipient_of_the_example_policies_has_a_contact() -> None:
    """Each `kind.role` a policy notifies is some organisation's contact, so no step of the
    example tells nobody."""
    config = load_config(EXAMPLE)
    held = {(org.kind.value, c.role) for org in config.organisations for c in org.contacts}
    for name, policy in config.policies.items():
        for step in policy.steps:
            for recipient in step.notify:
                kind, _, role = recipient.partition(".")
                assert (kind, role) in held, f"policy {name}: nobody is {recipient}"


def test_the_example_holds_no_key_and_no_real_number() -> None:
    config = load_config(EXAMPLE)
    assert all(u.api_key_sha256 is None for org in config.organisations for u in org.users)
    # Ofcom's range for drama: a number nobody answers.
    phones = [c.phone for org in config.organisations for c in org.contacts]
    phones += [o.phone for o in config.operations]
    assert phones and all(p.startswith("+447700900") for p in phones)
