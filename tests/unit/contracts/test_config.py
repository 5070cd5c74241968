"""GOLDENHOUR_CONFIG: DESIGN.md's example loads; each bad entry is refused by name."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from goldenhour.contracts.config import (
    ConfigError,
    GoldenHourConfig,
    OrgKind,
    UserRole,
    hash_api_key,
    load_config,
)
from goldenhour.contracts.events import RiskLevel

EXAMPLE = Path(__file__).with_name("design_example.yaml")
RAW: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
HOIE = {"code": "HOIE", "kind": "immigration_enforcement", "name": "Immigration Enforcement"}


@pytest.fixture
def write(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def _write(raw: dict[str, Any]) -> Path:
        path = tmp_path / "goldenhour.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return _write


def raw_with(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    change(raw)
    return raw


def test_design_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.timezone == "Europe/London"
    assert config.tz.key == "Europe/London"
    assert [o.code for o in config.organisations] == ["LBH", "MPS", "OAK", "UKMPU"]
    high = config.policies["high"]
    assert [s.after for s in high.steps] == [timedelta(minutes=m) for m in (0, 15, 30, 60)]
    assert high.steps[1].unless_acknowledged and high.steps[2].share == "neighbours"
    assert high.renotify_every == timedelta(minutes=10) and high.renotify_max == 3
    assert config.watchers.return_interview_due == timedelta(hours=72)
    assert config.watchers.episodes_threshold == 3
    # DESIGN.md names neighbours it does not list; they load, and can be warned about.
    assert config.unlisted_neighbours() == [("LBH", "LBI"), ("LBH", "LBT")]


def test_watchers_default_and_dump_round_trips(write: Callable[..., Path]) -> None:
    config = load_config(write(raw_with(lambda r: r.pop("watchers"))))
    assert config.watchers == load_config(EXAMPLE).watchers
    assert config.watchers.checkin_interval_unit == timedelta(minutes=1)
    dumped = config.model_dump(mode="json")
    assert dumped["policies"]["high"]["steps"][1]["after"] == "15m"
    assert GoldenHourConfig.model_validate(dumped) == config


def test_lookups() -> None:
    config = load_config(EXAMPLE)
    lbh = config.org("LBH")
    assert lbh is not None and lbh.kind == OrgKind.local_authority and lbh.police == "MPS"
    assert config.org("NOPE") is None

    found = config.user_for_key_hash(hash_api_key("lbh-dm1-test-key"))
    assert found is not None
    org, user = found
    assert (org.code, user.id, user.roles) == ("LBH", "lbh-dm1", [UserRole.duty_manager])
    assert config.user_for_key_hash(hash_api_key("oak-staff1-test-key"))[1].id == "oak-staff1"  # type: ignore[index]
    assert config.user_for_key_hash(hash_api_key("wrong-key")) is None
    assert config.user_for_key_hash("") is None

    org, contact = config.contact("mps-cr")  # type: ignore[misc]
    assert (org.code, contact.role, contact.phone) == ("MPS", "control_room", "+447700900010")
    assert config.contact("nobody") is None
    assert [c.id for _, c in config.contacts_by_phone("+447700900020")] == ["oak-mgr"]
    assert config.contacts_by_phone("+447700900999") == []


def test_policy_for_falls_back_to_high() -> None:
    config = load_config(EXAMPLE)
    assert config.policy_for(RiskLevel.high) is config.policies["high"]
    assert config.policy_for("medium") is config.policies["high"]
    assert config.policy_for("identification") is config.policies["identification"]


def test_hash_api_key_is_sha256_hex() -> None:
    digest = hash_api_key("secret")
    assert digest == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"


def test_one_phone_may_serve_several_contacts(write: Callable[..., Path]) -> None:
    def share_phone(r: dict[str, Any]) -> None:
        r["organisations"][0]["contacts"][1]["phone"] = "+44 7700 900001"

    config = load_config(write(raw_with(share_phone)))
    assert [c.id for _, c in config.contacts_by_phone("+447700900001")] == ["lbh-duty", "lbh-head"]


def test_a_bare_immigration_organisation_loads_but_is_unreachable(
    write: Callable[..., Path],
) -> None:
    config = load_config(write(raw_with(lambda r: r["organisations"].append(dict(HOIE)))))
    hoie = config.org("HOIE")
    assert hoie is not None and not hoie.users and not hoie.contacts


def _org(code: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda r: next(o for o in r["organisations"] if o["code"] == code)


LBH, MPS, OAK = _org("LBH"), _org("MPS"), _org("OAK")
USER = {"id": "ho-1", "roles": ["admin"], "api_key_sha256": "a" * 64}
ROTA = {
    "id": "lbh-edt",
    "role": "duty_manager",
    "shifts": [{"days": ["mon", "tue", "wed", "thu"], "start": "17:00", "end": "09:00"}],
    "members": ["lbh-duty"],
    "starts": "2026-11-30T17:00:00Z",
    "fallback": "lbh-head",
}
CONTACT = {"id": "ho-c", "role": "duty", "phone": "+447700900099", "email": "x@ho.example"}


def _add_org(org: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda r: r["organisations"].append(org)


REFUSALS: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("immigration org with users", _add_org({**HOIE, "users": [USER]}),
     "organisations[4] (HOIE): an immigration_enforcement organisation may hold no users, "
     "contacts or rotas"),
    ("immigration org with contacts", _add_org({**HOIE, "contacts": [CONTACT]}),
     "organisations[4] (HOIE): an immigration_enforcement organisation may hold no users"),
    ("immigration org as neighbour",
     lambda r: (r["organisations"].append(HOIE), LBH(r)["neighbours"].append("HOIE")),
     "organisations[0] (LBH).neighbours[2]: HOIE is immigration_enforcement: the firewall"),
    ("immigration org as police",
     lambda r: (r["organisations"].append(HOIE), LBH(r).update(police="HOIE")),
     "organisations[0] (LBH).police: HOIE is immigration_enforcement"),
    ("immigration org as local authority",
     lambda r: (r["organisations"].append(HOIE), OAK(r).update(local_authority="HOIE")),
     "organisations[2] (OAK).local_authority: HOIE is immigration_enforcement"),
    ("immigration recipient",
     lambda r: r["policies"]["high"]["steps"][0]["notify"].append("immigration_enforcement.duty"),
     "policies.high.steps[0].notify[3]: 'immigration_enforcement.duty': immigration_enforcement "
     "can never be a recipient"),
    ("unknown recipient kind",
     lambda r: r["policies"]["high"]["steps"][0]["notify"].append("ngo.duty"),
     "policies.high.steps[0].notify[3]: 'ngo.duty' is not kind.role"),
    ("bad phone", lambda r: OAK(r)["contacts"][0].update(phone="+4477"),
     "organisations[2] (OAK).contacts[0].phone: not a valid phone number '+4477'"),
    ("phone without country", lambda r: OAK(r)["contacts"][0].update(phone="07700900020"),
     "organisations[2] (OAK).contacts[0].phone: not a valid phone number '07700900020'"),
    ("bad email", lambda r: MPS(r)["contacts"][1].update(email="mpu.mps.example"),
     "organisations[1] (MPS).contacts[1].email: value is not a valid email address"),
    ("duplicate contact id", lambda r: MPS(r)["contacts"][1].update(id="lbh-duty"),
     "organisations[1] (MPS).contacts[1]: contact id lbh-duty is already used by "
     "organisations[0] (LBH).contacts[0]"),
    ("duplicate user id", lambda r: OAK(r)["users"][0].update(id="lbh-dm1"),
     "organisations[2] (OAK).users[0]: user id lbh-dm1 is already used by organisations[0] (LBH)"),
    ("duplicate key", lambda r: OAK(r)["users"][0].update(
        api_key_sha256=LBH(r)["users"][0]["api_key_sha256"]),
     "organisations[2] (OAK).users[0]: API key is already used by organisations[0] (LBH).users[0]"),
    ("duplicate org code", lambda r: MPS(r).update(code="LBH"),
     "organisations[1] (LBH).code: organisation code LBH is used twice"),
    ("neighbour not an authority", lambda r: LBH(r)["neighbours"].append("MPS"),
     "organisations[0] (LBH).neighbours[2]: MPS is a police, not a local_authority"),
    ("own neighbour", lambda r: LBH(r)["neighbours"].append("LBH"),
     "organisations[0] (LBH).neighbours[2]: LBH cannot be its own neighbour"),
    ("neighbour twice", lambda r: LBH(r)["neighbours"].append("LBI"),
     "organisations[0] (LBH).neighbours: a neighbour is listed twice"),
    ("unknown police", lambda r: LBH(r).update(police="XPS"),
     "organisations[0] (LBH).police: XPS is not an organisation in this directory"),
    ("police not a force", lambda r: LBH(r).update(police="OAK"),
     "organisations[0] (LBH).police: OAK is a care_home, not a police"),
    ("police on a care home", lambda r: OAK(r).update(police="MPS"),
     "organisations[2] (OAK): police is set only on a local_authority, not a care_home"),
    ("unsorted steps",
     lambda r: r["policies"]["high"]["steps"].insert(0, r["policies"]["high"]["steps"].pop(2)),
     "policies.high.steps: steps[1] (after 0s) is earlier than steps[0]"),
    ("step without channels",
     lambda r: r["policies"]["high"]["steps"][0].pop("channels"),
     "policies.high.steps[0]: notify and channels go together"),
    ("step doing nothing", lambda r: r["policies"]["high"]["steps"][2].pop("share"),
     "policies.high.steps[2]: a step must notify someone or share"),
    ("bad duration", lambda r: r["policies"]["high"]["steps"][1].update(after="15 minutes"),
     "policies.high.steps[1].after: not a duration '15 minutes'"),
    ("zero renotify", lambda r: r["policies"]["high"].update(renotify_every="0m"),
     "policies.high.renotify_every: renotify_every must be more than 0s"),
    ("no high policy", lambda r: r["policies"].pop("high"),
     "policies: a 'high' policy is required"),
    ("unknown policy", lambda r: r["policies"].update(urgent=r["policies"]["high"]),
     "policies: unknown policy urgent"),
    ("rota of a stranger", lambda r: LBH(r).update(rotas=[{**ROTA, "members": ["mps-cr"]}]),
     "organisations[0] (LBH): rota lbh-edt: member mps-cr is not a duty_manager contact of LBH"),
    ("rota of another role",
     lambda r: LBH(r).update(rotas=[{**ROTA, "members": ["lbh-duty", "lbh-head"]}]),
     "member lbh-head is not a duty_manager contact of LBH"),
    ("rota fallback unknown", lambda r: LBH(r).update(rotas=[{**ROTA, "fallback": "nobody"}]),
     "rota lbh-edt: fallback nobody is not a contact of LBH"),
    ("two rotas for a role", lambda r: LBH(r).update(rotas=[ROTA, {**ROTA, "id": "again"}]),
     "rota again: role duty_manager has a rota already"),
    ("rota end day on many days", lambda r: LBH(r).update(rotas=[{**ROTA, "shifts": [
        {"days": ["fri", "sat"], "start": "17:00", "end": "mon 09:00"}]}]),
     "organisations[0] (LBH).rotas[0].shifts[0]: an end on a named day belongs to a shift"),
    ("immigration org with a rota", _add_org({**HOIE, "rotas": [ROTA]}),
     "an immigration_enforcement organisation may hold no users, contacts or rotas"),
    ("typo key in org", lambda r: OAK(r).update(contatcs=OAK(r).pop("contacts")),
     "organisations[2] (OAK).contatcs: unknown key"),
    ("typo key at top", lambda r: r.update(watcher=r.pop("watchers")), "watcher: unknown key"),
    ("typo key in watchers", lambda r: r["watchers"].update(checkin_grase="5m"),
     "watchers.checkin_grase: unknown key"),
    ("typo key in step", lambda r: r["policies"]["high"]["steps"][0].update(notfy=[]),
     "policies.high.steps[0].notfy: unknown key"),
    ("bad timezone", lambda r: r.update(timezone="Europe/Londn"),
     "timezone: unknown time zone 'Europe/Londn'"),
    ("missing timezone", lambda r: r.pop("timezone"), "timezone: required but missing"),
    ("unknown org kind", lambda r: MPS(r).update(kind="army"), "organisations[1] (MPS).kind:"),
    ("lower-case org code", lambda r: MPS(r).update(code="mps"), "organisations[1] (mps).code:"),
    ("unknown user role", lambda r: OAK(r)["users"][0].update(roles=["cook"]),
     "organisations[2] (OAK).users[0].roles[0]:"),
    ("no user roles", lambda r: OAK(r)["users"][0].update(roles=[]),
     "organisations[2] (OAK).users[0].roles:"),
    ("upper-case key hash", lambda r: OAK(r)["users"][0].update(api_key_sha256="A" * 64),
     "organisations[2] (OAK).users[0].api_key_sha256:"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "expected"), REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals_name_the_entry(
    write: Callable[..., Path], case: str, change: Callable[..., object], expected: str
) -> None:
    path = write(raw_with(change))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert message.startswith(f"GOLDENHOUR_CONFIG {path}: ")
    assert expected in message, message


def test_every_problem_is_listed_in_one_message(write: Callable[..., Path]) -> None:
    def two_bad(r: dict[str, Any]) -> None:
        OAK(r)["contacts"][0]["phone"] = "+4477"
        r["timezone"] = "Mars/Olympus"

    with pytest.raises(ConfigError) as exc:
        load_config(write(raw_with(two_bad)))
    lines = str(exc.value).splitlines()
    assert "2 problems" in lines[0]
    assert any("organisations[2] (OAK).contacts[0].phone" in line for line in lines[1:])
    assert any("timezone: unknown time zone 'Mars/Olympus'" in line for line in lines[1:])


def test_the_direct_model_error_also_names_the_entry() -> None:
    raw = raw_with(lambda r: r["organisations"].append({**HOIE, "users": [USER]}))
    with pytest.raises(ValueError, match="may hold no users, contacts or rotas") as exc:
        GoldenHourConfig.model_validate(raw)
    assert exc.value.errors()[0]["loc"] == ("organisations", 4)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read the file"),
        ("timezone: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=expected) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"GOLDENHOUR_CONFIG {path}: ")


def test_a_rota_of_the_authoritys_duty_managers_loads(write: Callable[..., Path]) -> None:
    config = load_config(write(raw_with(lambda r: LBH(r).update(rotas=[ROTA]))))
    [rota] = config.org("LBH").rotas
    assert (rota.members, rota.fallback) == (["lbh-duty"], "lbh-head")
