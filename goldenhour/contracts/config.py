"""GOLDENHOUR_CONFIG: the directory of organisations, users and contacts, and escalation policies.

An invalid file is refused at start by `load_config`, with one message naming every bad entry.
The firewall (DESIGN.md rule 3) is enforced here: an `immigration_enforcement` organisation can
hold no user, key or contact and can never be a neighbour, police force, authority or recipient.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    EmailStr,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from goldenhour.contracts.events import RiskLevel
from goldenhour.contracts.fields import OrgCode, Phone, RecordId, Role, ShortText
from goldenhour.contracts.policy import POLICY_KEYS, ConfigEntry, Delivery, Policy, Step, Watchers
from goldenhour.contracts.rotas import Rota

__all__ = [
    "ConfigError",
    "Contact",
    "Delivery",
    "GoldenHourConfig",
    "OperationsContact",
    "OrgKind",
    "Organisation",
    "Policy",
    "Step",
    "User",
    "UserRole",
    "Watchers",
    "hash_api_key",
    "load_config",
]


class UserRole(StrEnum):
    """What a user may do through the API and console."""

    care_staff = "care_staff"
    social_worker = "social_worker"
    duty_manager = "duty_manager"
    police_officer = "police_officer"
    control_room = "control_room"
    admin = "admin"
    head_of_service = "head_of_service"


class OrgKind(StrEnum):
    """The kind of an organisation in the directory."""

    care_home = "care_home"
    local_authority = "local_authority"
    police = "police"
    ngo = "ngo"
    national = "national"
    immigration_enforcement = "immigration_enforcement"


class Contact(ConfigEntry):
    """Someone (or a shared desk) who receives alerts by SMS and email."""

    id: RecordId
    role: Role
    phone: Phone
    email: EmailStr


class OperationsContact(ConfigEntry):
    """Someone of the platform team, told when the system itself needs a person: a record
    dead-lettered, an alert whose processing keeps failing."""

    id: RecordId
    name: ShortText | None = None
    phone: Phone
    email: EmailStr


class User(ConfigEntry):
    """Someone who signs in to the API or console with a key."""

    id: RecordId
    name: ShortText | None = None
    roles: list[UserRole] = Field(min_length=1)
    api_key_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None


class Organisation(ConfigEntry):
    """An agency in the directory."""

    code: OrgCode
    kind: OrgKind
    name: ShortText | None = None
    police: OrgCode | None = None  # local authorities: the force that covers it
    local_authority: OrgCode | None = None  # care homes: the authority they work for
    neighbours: list[OrgCode] = Field(default_factory=list)  # local authorities only
    users: list[User] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    # Who of a role's contacts is on call when (contracts/rotas.py): one rota per role.
    rotas: list[Rota] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Organisation:
        if self.kind == OrgKind.immigration_enforcement and (
            self.users or self.contacts or self.rotas
        ):
            raise PydanticCustomError(
                "firewall",
                "an immigration_enforcement organisation may hold no users, contacts or rotas",
            )
        for field, kind in (
            ("police", OrgKind.local_authority),
            ("neighbours", OrgKind.local_authority),
            ("local_authority", OrgKind.care_home),
        ):
            if getattr(self, field) and self.kind != kind:
                raise PydanticCustomError(
                    "org_field",
                    "{field} is set only on a {kind}, not a {own}",
                    {"field": field, "kind": str(kind), "own": str(self.kind)},
                )
        self._check_rotas()
        return self

    def has_contact(self, contact_id: str, role: str) -> bool:
        """Whether `contact_id` is one of this organisation's contacts of `role`."""
        return any(c.id == contact_id and c.role == role for c in self.contacts)

    def _check_rotas(self) -> None:
        """Each rota's members are this organisation's contacts of its role, its fallback one
        of its contacts, and no role has two rotas."""
        roles = {c.id: c.role for c in self.contacts}
        seen: set[str] = set()
        for rota in self.rotas:
            if rota.role in seen:
                raise PydanticCustomError(
                    "rota",
                    "rota {id}: role {role} has a rota already",
                    {"id": rota.id, "role": rota.role},
                )
            seen.add(rota.role)
            for member in rota.members:
                if roles.get(member) != rota.role:
                    raise PydanticCustomError(
                        "rota",
                        "rota {id}: member {member} is not a {role} contact of {code}",
                        {"id": rota.id, "member": member, "role": rota.role, "code": self.code},
                    )
            if rota.fallback not in roles:
                raise PydanticCustomError(
                    "rota",
                    "rota {id}: fallback {fallback} is not a contact of {code}",
                    {"id": rota.id, "fallback": rota.fallback, "code": self.code},
                )


def hash_api_key(key: str) -> str:
    """The sha256 hex digest stored in `api_key_sha256` for an API key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class GoldenHourConfig(ConfigEntry):
    """The whole GOLDENHOUR_CONFIG file, validated, with lookups."""

    timezone: str
    organisations: list[Organisation]
    policies: dict[str, Policy]
    watchers: Watchers = Field(default_factory=Watchers)
    delivery: Delivery = Field(default_factory=Delivery)
    operations: list[OperationsContact] = Field(default_factory=list)

    _orgs: dict[str, Organisation] = PrivateAttr(default_factory=dict)
    _keys: dict[str, tuple[Organisation, User]] = PrivateAttr(default_factory=dict)
    _contacts: dict[str, tuple[Organisation, Contact]] = PrivateAttr(default_factory=dict)
    _users: dict[str, tuple[Organisation, User]] = PrivateAttr(default_factory=dict)
    _phones: dict[str, list[tuple[Organisation, Contact]]] = PrivateAttr(default_factory=dict)
    _rotas: dict[str, tuple[Organisation, Rota]] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                "unknown time zone '{value}' (an IANA name, e.g. Europe/London)",
                {"value": value},
            ) from None
        return value

    @field_validator("policies")
    @classmethod
    def _policy_keys(cls, policies: dict[str, Policy]) -> dict[str, Policy]:
        unknown = sorted(set(policies) - POLICY_KEYS)
        if unknown:
            raise PydanticCustomError(
                "policies",
                "unknown policy {keys}: policies are {allowed}",
                {"keys": ", ".join(unknown), "allowed": ", ".join(sorted(POLICY_KEYS))},
            )
        if "high" not in policies:
            raise PydanticCustomError("policies", "a 'high' policy is required")
        return policies

    @model_validator(mode="after")
    def _directory(self) -> GoldenHourConfig:
        errors = _directory_errors(self.organisations)
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        for org in self.organisations:
            self._orgs[org.code] = org
            for user in org.users:
                self._users[user.id] = (org, user)
                if user.api_key_sha256:
                    self._keys[user.api_key_sha256] = (org, user)
            for contact in org.contacts:
                self._contacts[contact.id] = (org, contact)
                self._phones.setdefault(contact.phone, []).append((org, contact))
            for rota in org.rotas:
                self._rotas[rota.id] = (org, rota)
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The zone for local times (curfews, message wording)."""
        return ZoneInfo(self.timezone)

    def org(self, code: str) -> Organisation | None:
        """The organisation with this code."""
        return self._orgs.get(code)

    def user_for_key_hash(self, key_sha256: str) -> tuple[Organisation, User] | None:
        """The owner of an API key, by the key's sha256 hex (see `hash_api_key`)."""
        found = self._keys.get(key_sha256)
        if found is None or found[1].api_key_sha256 is None:
            return None
        # Belt and braces: the dict lookup found it; compare in constant time all the same.
        if not hmac.compare_digest(found[1].api_key_sha256, key_sha256):
            return None
        return found

    def user(self, user_id: str) -> tuple[Organisation, User] | None:
        """A user and its organisation, by user id."""
        return self._users.get(user_id)

    def contact(self, contact_id: str) -> tuple[Organisation, Contact] | None:
        """A contact and its organisation, by contact id."""
        return self._contacts.get(contact_id)

    def rota(self, rota_id: str) -> tuple[Organisation, Rota] | None:
        """A rota and its organisation, by rota id (unique across the directory)."""
        return self._rotas.get(rota_id)

    def rotas(self) -> list[tuple[Organisation, Rota]]:
        """Every rota of the directory with its organisation, in directory order."""
        return list(self._rotas.values())

    def contacts_by_phone(self, e164: str) -> list[tuple[Organisation, Contact]]:
        """Every contact with this E.164 number (one person may hold several roles)."""
        return list(self._phones.get(e164, []))

    def unlisted_neighbours(self) -> list[tuple[str, str]]:
        """(authority, neighbour) pairs naming a neighbour not in the directory, to warn about."""
        return [
            (o.code, n) for o in self.organisations for n in o.neighbours if n not in self._orgs
        ]

    def policy_for(self, risk_level: RiskLevel | str) -> Policy:
        """The policy for a risk level (or "identification"), else `high`.

        Falling back to `high` is deliberate: over-alerting is safer than no alert at all.
        """
        return self.policies.get(str(risk_level)) or self.policies["high"]


def _directory_errors(orgs: Sequence[Organisation]) -> list[InitErrorDetails]:
    """Every cross-entry problem of the directory, each located at the entry at fault."""
    errors: list[InitErrorDetails] = []

    def fail(loc: tuple[str | int, ...], message: str, value: Any) -> None:
        error = PydanticCustomError("directory", "{message}", {"message": message})
        errors.append({"type": error, "loc": loc, "input": value})

    by_code: dict[str, Organisation] = {}
    for i, org in enumerate(orgs):
        if org.code in by_code:
            fail(
                ("organisations", i, "code"),
                f"organisation code {org.code} is used twice",
                org.code,
            )
        by_code.setdefault(org.code, org)

    # Ids and key hashes are unique across the whole directory: an SMS reply, an audit line or
    # a key must lead to exactly one person.
    first: dict[tuple[str, str], str] = {}
    for i, org in enumerate(orgs):
        entries = [
            *((("users", j), "user id", u.id) for j, u in enumerate(org.users)),
            *((("users", j), "API key", u.api_key_sha256) for j, u in enumerate(org.users)),
            *((("contacts", j), "contact id", c.id) for j, c in enumerate(org.contacts)),
            *((("rotas", j), "rota id", r.id) for j, r in enumerate(org.rotas)),
        ]
        for (field, j), what, value in entries:
            if value is None:
                continue
            where = f"organisations[{i}] ({org.code}).{field}[{j}]"
            if (what, value) in first:
                shown = "" if what == "API key" else f" {value}"
                message = f"{what}{shown} is already used by {first[what, value]}"
                fail(("organisations", i, field, j), message, value)
            first.setdefault((what, value), where)

        links: list[tuple[tuple[str | int, ...], str, OrgKind]] = [
            (("neighbours", k), code, OrgKind.local_authority)
            for k, code in enumerate(org.neighbours)
        ]
        if org.police:
            links.append((("police",), org.police, OrgKind.police))
        if org.local_authority:
            links.append((("local_authority",), org.local_authority, OrgKind.local_authority))
        for field_loc, code, want in links:
            loc = ("organisations", i, *field_loc)
            target = by_code.get(code)
            if target is None and field_loc[0] == "neighbours":
                # DESIGN.md's own example names neighbours (LBI, LBT) it does not list: one not
                # yet in the directory has no subscribers, so nothing is routed to it.
                continue
            if target is None:
                fail(loc, f"{code} is not an organisation in this directory", code)
            elif target.kind == OrgKind.immigration_enforcement:
                message = f"{code} is immigration_enforcement: the firewall forbids naming it here"
                fail(loc, message, code)
            elif code == org.code:
                fail(loc, f"{code} cannot be its own neighbour", code)
            elif target.kind != want:
                fail(loc, f"{code} is a {target.kind}, not a {want}", code)
        if len(set(org.neighbours)) != len(org.neighbours):
            fail(("organisations", i, "neighbours"), "a neighbour is listed twice", org.neighbours)
    return errors


class ConfigError(Exception):
    """GOLDENHOUR_CONFIG is missing, unreadable or invalid; the message names every bad entry."""


def load_config(path: str | os.PathLike[str]) -> GoldenHourConfig:
    """Read and validate the YAML file at `path`; ConfigError naming each bad entry if invalid."""
    where = f"GOLDENHOUR_CONFIG {os.fspath(path)}"
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read the file ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with timezone, organisations, policies")
    try:
        return GoldenHourConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"{_entry(raw, err['loc'])}: {_message(err)}" for err in e.errors()]
        if len(lines) == 1:
            raise ConfigError(f"{where}: {lines[0]}") from None
        raise ConfigError("\n  ".join([f"{where}: {len(lines)} problems", *lines])) from None


def _entry(raw: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    """`organisations[2] (OAK).contacts[0].phone` for a pydantic error location."""
    text = ""
    for k, part in enumerate(loc):
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
        if k == 1 and loc[0] == "organisations" and isinstance(part, int):
            orgs = raw.get("organisations")
            org = orgs[part] if isinstance(orgs, list) and part < len(orgs) else None
            if isinstance(org, dict) and org.get("code"):
                text += f" ({org['code']})"
    return text or "(file)"


def _message(err: Any) -> str:
    """A pydantic error's message, reworded for the ones a config author most often meets."""
    if err["type"] == "extra_forbidden":
        return "unknown key (a typo?)"
    if err["type"] == "missing":
        return "required but missing"
    message: str = err["msg"]
    return message.removeprefix("Value error, ")
