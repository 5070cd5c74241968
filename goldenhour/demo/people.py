"""Scenario 1's cast and pace: who is who in the London directory, and what each step does."""

from __future__ import annotations

from dataclasses import dataclass, field

from goldenhour.contracts.alert_kinds import is_renotify_key, position_key, renotify_round
from goldenhour.contracts.policy import Policy

SCALE = 0.2  # seconds per policy minute: the golden hour lasts 12 s
CHILD = "LBH-2026-0042"
PLACE = "Mare Street bus stop, Hackney"
FIRST_WAVE = ("mps-cr", "lbh-duty", "oak-mgr")
SECOND_WAVE = ("mps-mpu", "lbh-head")
NATIONAL = "ukmpu"
NEIGHBOUR = "lbi-duty"
ACKER = "lbh-duty"
# The directory's on-call rotas as the demo reads them: who asks (a user of the rota's
# organisation), the rota, and who of its members is on call this week and who is off.
ROTAS = (
    ("lbh-dm1", "lbh-duty-rota", "lbh-duty", "lbh-edt-2"),
    ("mps-cr1", "mps-control-room", "mps-cr", "mps-cr-2"),
)
ROLE_WORDS = {
    "control_room": "control room",
    "duty_manager": "duty manager",
    "head_of_service": "head of service",
    "missing_persons_unit": "missing persons unit",
    "manager": "manager",
}


@dataclass
class Directory:
    """Who is who in the demo's directory: contacts, their organisations, phones and emails."""

    config: dict
    org_names: dict[str, str] = field(default_factory=dict)
    contact_org: dict[str, str] = field(default_factory=dict)
    contact_role: dict[str, str] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)
    by_email: dict[str, str] = field(default_factory=dict)
    phone_of: dict[str, str] = field(default_factory=dict)
    # The high-risk policy's steps by their stable keys: (position, the step as configured).
    steps: dict[str, tuple[int, dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        high = self.config["policies"]["high"]
        for index, (step, raw) in enumerate(
            zip(Policy.model_validate(high).steps, high["steps"], strict=True)
        ):
            self.steps[step.key] = (index, raw)
        for org in self.config["organisations"]:
            self.org_names[org["code"]] = org.get("name") or org["code"]
            for contact in org.get("contacts", []):
                self.contact_org[contact["id"]] = org["code"]
                self.contact_role[contact["id"]] = contact["role"]
                self.by_phone[contact["phone"]] = contact["id"]
                self.by_email[contact["email"].lower()] = contact["id"]
                self.phone_of[contact["id"]] = contact["phone"]
            for user in org.get("users", []):
                self.contact_org.setdefault(user["id"], org["code"])

    def org_of(self, who: str) -> str:
        return self.org_names.get(self.contact_org.get(who, ""), "?")

    def describe(self, contact_id: str) -> str:
        """e.g. `mps-cr (Metropolitan Police, control room)`."""
        role = ROLE_WORDS.get(self.contact_role.get(contact_id, ""), "")
        return f"{contact_id} ({self.org_of(contact_id)}{', ' + role if role else ''})"

    def short(self, key: str) -> str:
        """A step's name in the timeline's narrow column: its place in the policy (`s0` the
        first), shorter than its stable key."""
        return position_key(self.steps[key][0]) if key in self.steps else key

    def first_key(self) -> str:
        return next(iter(self.steps))

    def step_label(self, key: str, condition: bool = True) -> str:
        """What a step of the high-risk policy does, in words."""
        policy = self.config["policies"]["high"]
        if is_renotify_key(key):
            n = renotify_round(key)
            return f"reminder {n} of {policy['renotify_max']} to all not yet acknowledged"
        if key == "stand_down":
            return "stand-down to everyone told"
        if key not in self.steps:
            return key
        step = self.steps[key][1]
        minutes = policy_minutes(step["after"])
        if step.get("share"):
            return f"+{minutes} min: shared alert"
        roles = [ROLE_WORDS.get(t.split(".", 1)[1], t) for t in step.get("notify", [])]
        kinds = [t.split(".", 1)[0] for t in step.get("notify", [])]
        prefix = {"national": "national ", "police": "police ", "care_home": "care home "}
        who = ", ".join(prefix.get(k, "") + r for k, r in zip(kinds, roles, strict=True))
        cond = " (unless acknowledged)" if condition and step.get("unless_acknowledged") else ""
        return f"+{minutes} min: {who}{cond}"


def policy_minutes(after: str) -> int:
    """A scaled duration such as `3s` back into policy minutes (15)."""
    if after.endswith("s"):
        return round(float(after[:-1]) / SCALE)
    if after.endswith("m"):
        return int(after[:-1])
    return round(float(after.rstrip("h")) * 60)
