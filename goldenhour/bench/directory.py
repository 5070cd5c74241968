"""A realistic directory for the benchmark: 33 authorities, their police forces, 300 care homes.

The same shape as `dev.london.directory()` returns (the config file's content and the API
key of every user), with the real-time policies of that directory, so what the bench measures is
what a real deployment's config would make the system do. Phone numbers come from Ofcom's drama
range (+447700900xxx): they can never reach a real person, and there are 1,000 of them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from goldenhour.contracts.config import hash_api_key
from goldenhour.dev.london import directory as dev_directory

AUTHORITIES = 33
FORCES = 8
CARE_HOMES = 300
NATIONAL = "UKMPU"


@dataclass
class Directory:
    """The config dict, the API keys, and who acts for whom (for the load generator)."""

    config: dict
    keys: dict[str, str]
    authorities: list[str] = field(default_factory=list)
    homes: list[str] = field(default_factory=list)
    home_authority: dict[str, str] = field(default_factory=dict)

    def staff(self, home: str) -> str:
        """The care-staff user of a care home."""
        return f"{home.lower()}-staff"

    def duty_user(self, authority: str) -> str:
        """The duty manager user of an authority."""
        return f"{authority.lower()}-dm"


class _Phones:
    """Hands out distinct numbers of the fictional range."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> str:
        if self.next > 999:
            raise ValueError("the fictional +447700900xxx range holds 1,000 numbers")
        self.next += 1
        return f"+447700900{self.next - 1:03d}"


def build(
    authorities: int = AUTHORITIES, forces: int = FORCES, homes: int = CARE_HOMES
) -> Directory:
    """The directory; authorities are neighbours of the next and previous in the list."""
    keys: dict[str, str] = {}
    phone = _Phones()

    def user(user_id: str, roles: list[str]) -> dict:
        keys[user_id] = f"gh_{secrets.token_urlsafe(24)}"
        return {"id": user_id, "roles": roles, "api_key_sha256": hash_api_key(keys[user_id])}

    def contact(code: str, role: str) -> dict:
        slug = code.lower()
        return {
            "id": f"{slug}-{role.replace('_', '-')}",
            "role": role,
            "phone": phone(),
            "email": f"{role}@{slug}.example",
        }

    orgs: list[dict] = []
    force_codes = [f"PF{i + 1:02d}" for i in range(forces)]
    for code in force_codes:
        orgs.append(
            {
                "code": code,
                "kind": "police",
                "name": f"Police Force {code[2:]}",
                "users": [user(f"{code.lower()}-cr", ["control_room"])],
                "contacts": [contact(code, "control_room"), contact(code, "missing_persons_unit")],
            }
        )
    la_codes = [f"LA{i + 1:02d}" for i in range(authorities)]
    for i, code in enumerate(la_codes):
        neighbours = sorted({la_codes[i - 1], la_codes[(i + 1) % authorities]} - {code})
        orgs.append(
            {
                "code": code,
                "kind": "local_authority",
                "name": f"Authority {code[2:]} Children's Services",
                "police": force_codes[i % forces],
                "neighbours": neighbours,
                "users": [user(f"{code.lower()}-dm", ["duty_manager"])],
                "contacts": [
                    contact(code, role)
                    for role in ("duty_manager", "head_of_service", "social_worker")
                ],
            }
        )
    home_codes = [f"CH{i + 1:03d}" for i in range(homes)]
    home_authority = {}
    for i, code in enumerate(home_codes):
        home_authority[code] = la_codes[i % authorities]
        orgs.append(
            {
                "code": code,
                "kind": "care_home",
                "name": f"Care Home {code[2:]}",
                "local_authority": home_authority[code],
                "users": [user(f"{code.lower()}-staff", ["care_staff"])],
                "contacts": [contact(code, "manager")],
            }
        )
    orgs.append(
        {
            "code": NATIONAL,
            "kind": "national",
            "name": "UK Missing Persons Unit",
            "contacts": [contact(NATIONAL, "missing_persons_unit")],
        }
    )
    # The real-time (unscaled) policies of the dev directory: 0/15/30/60 minutes, re-notify 10m.
    policies = dev_directory(scale=None)[0]["policies"]
    config = {"timezone": "Europe/London", "organisations": orgs, "policies": policies}
    return Directory(config, keys, la_codes, home_codes, home_authority)
