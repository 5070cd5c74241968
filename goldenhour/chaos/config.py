"""The chaos run's directory and policies: the demo's London directory, a medium policy for
the risk changes, a high policy with two steps at once (so a deploy can reorder them), delivery
times in fault minutes, and what every step owes to whom."""

from __future__ import annotations

import copy
from typing import Any

from goldenhour.contracts.policy import Step
from goldenhour.dev.london import CONTACTS, directory

OPERATIONS = [
    {
        "id": "ops-oncall",
        "name": "Platform on call",
        "phone": "+447700900900",
        "email": "oncall@ops.example",
    }
]
# The organisation each recipient kind resolves to for every child of the run (placed at Oak
# House, in Hackney, policed by the Met).
ORG_OF_KIND = {"police": "MPS", "local_authority": "LBH", "care_home": "OAK", "national": "UKMPU"}
BOTH = ["sms", "email"]


def _after(minutes: float, scale: float) -> str:
    return f"{round(minutes * scale)}s"


def _policies(scale: float) -> dict[str, Any]:
    renotify = {"renotify_every": _after(10, scale), "renotify_max": 3}
    national = {"after": _after(60, scale), "notify": ["national.missing_persons_unit"]}
    high = [
        {"after": _after(0, scale), "notify": ["police.control_room"], "channels": BOTH},
        {
            "after": _after(0, scale),
            "notify": ["local_authority.duty_manager", "care_home.manager"],
            "channels": BOTH,
        },
        {
            "after": _after(15, scale),
            "notify": ["police.missing_persons_unit", "local_authority.head_of_service"],
            "channels": BOTH,
            "unless_acknowledged": True,
        },
        {"after": _after(30, scale), "share": "neighbours"},
        {**national, "channels": BOTH},
    ]
    # Raised to high part-way, a medium alert owes high's steps it never had: the care home
    # manager at once, the missing persons unit and head of service from 15 minutes.
    medium = [
        {
            "after": _after(0, scale),
            "notify": ["police.control_room", "local_authority.duty_manager"],
            "channels": BOTH,
        },
        {
            "after": _after(30, scale),
            "notify": ["local_authority.head_of_service"],
            "channels": BOTH,
            "unless_acknowledged": True,
        },
        {**national, "channels": BOTH},
    ]
    return {"high": {**renotify, "steps": high}, "medium": {**renotify, "steps": medium}}


def chaos_config(scale: float, fault_minute_s: float) -> tuple[dict, dict[str, str]]:
    """The config file's content and every user's API key. `scale` is seconds per policy
    minute; `fault_minute_s` seconds per minute of the delivery settings (failover to a call
    after 2 of them, a person told after 5), so a Twilio storm of 1–3 such minutes crosses
    the failover and stays short of the unreachable notice, as it would in real time."""
    config, keys = directory(scale=scale, watchers={"placement_within": "1h"})
    config["operations"] = OPERATIONS
    config["policies"] = _policies(scale)
    config["delivery"] = {
        "sms_failover_after": f"{round(2 * fault_minute_s)}s",
        "unreachable_after": f"{round(5 * fault_minute_s)}s",
    }
    return config, keys


# The step a deploy inserts into the high policy, between the share and the golden hour's end.
INSERTED = {
    "notify": ["local_authority.social_worker"],
    "channels": ["sms"],
    "unless_acknowledged": True,
}


def reordered(config: dict, scale: float) -> dict:
    """The same config after a deploy that lists high's two immediate steps the other way
    round and inserts a 45-minute step: no due step may be repeated or dropped for it."""
    out = copy.deepcopy(config)
    steps = out["policies"]["high"]["steps"]
    steps[0], steps[1] = steps[1], steps[0]
    at = next(i for i, s in enumerate(steps) if s.get("share"))
    steps.insert(at + 1, {"after": _after(45, scale), **INSERTED})
    return out


def step_keys(config: dict) -> dict[str, dict[str, dict]]:
    """Each policy's steps by every key the clock may record them under: the stable key, and
    the position (`s0`, `s1` …) that older clocks used."""
    out: dict[str, dict[str, dict]] = {}
    for name, policy in config["policies"].items():
        by_key = out.setdefault(name, {})
        for index, raw in enumerate(policy["steps"]):
            by_key[Step.model_validate(raw).key] = raw
            by_key.setdefault(f"s{index}", raw)
    return out


def contacts_for(recipients: list[str]) -> set[str]:
    """The contact ids `kind.role` recipients resolve to for a child of the run."""
    out = set()
    for recipient in recipients:
        kind, _, role = recipient.partition(".")
        out |= {c["id"] for c in CONTACTS.get(ORG_OF_KIND[kind], []) if c["role"] == role}
    return out


def owed(*configs: dict) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(policy, step key) -> the (contact, channel) messages that step owes when it fires,
    over every config the run deployed (a key means one step whichever config holds it)."""
    out: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for config in configs:
        for policy, steps in step_keys(config).items():
            for key, raw in steps.items():
                if raw.get("notify"):
                    contacts = contacts_for(raw["notify"])
                    # The first config wins: a position key means the step there when it fired
                    # (a stable key is the same step in every config anyway).
                    pairs = {(c, ch) for c in contacts for ch in raw["channels"]}
                    out.setdefault((policy, key), pairs)
    return out


def inserted_key(scale: float) -> str:
    """The stable key of the step the deploy inserts."""
    return Step.model_validate({"after": _after(45, scale), **INSERTED}).key
