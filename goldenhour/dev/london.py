"""The London fixtures: a small directory (Hackney, Islington, the Met, two children's homes,
the national missing persons unit) with made-up API keys, and the events posted about a child.

The policy's minutes can be scaled down to seconds so a golden hour passes quickly.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from goldenhour.contracts.config import hash_api_key

CONTACTS = {
    "LBH": [
        {
            "id": "lbh-duty",
            "role": "duty_manager",
            "phone": "+447700900001",
            "email": "duty@lbh.example",
        },
        {
            "id": "lbh-head",
            "role": "head_of_service",
            "phone": "+447700900002",
            "email": "head@lbh.example",
        },
        {
            "id": "lbh-sw",
            "role": "social_worker",
            "phone": "+447700900003",
            "email": "sw@lbh.example",
        },
    ],
    "LBI": [
        {
            "id": "lbi-duty",
            "role": "duty_manager",
            "phone": "+447700900101",
            "email": "duty@lbi.example",
        }
    ],
    "MPS": [
        {
            "id": "mps-cr",
            "role": "control_room",
            "phone": "+447700900010",
            "email": "cr@mps.example",
        },
        {
            "id": "mps-mpu",
            "role": "missing_persons_unit",
            "phone": "+447700900011",
            "email": "mpu@mps.example",
        },
    ],
    "OAK": [
        {"id": "oak-mgr", "role": "manager", "phone": "+447700900020", "email": "mgr@oak.example"}
    ],
    "UKMPU": [
        {
            "id": "ukmpu",
            "role": "missing_persons_unit",
            "phone": "+447700900030",
            "email": "mpu@ukmpu.example",
        }
    ],
}

USERS = {
    "LBH": [("lbh-dm1", "A. Duty", ["duty_manager"]), ("lbh-sw1", "S. Worker", ["social_worker"])],
    "LBI": [("lbi-dm1", "I. Duty", ["duty_manager"])],
    "MPS": [("mps-cr1", "C. Room", ["control_room"])],
    "OAK": [("oak-staff1", "N. Shift", ["care_staff"])],
    "ELM": [("elm-staff1", "E. Staff", ["care_staff"])],
}


# A high-risk child as the demo and the acceptance tests identify and place it.
IDENTIFIED = {
    "risk_level": "high",
    "local_authority": "LBH",
    "unaccompanied": True,
    "exploitation_types": ["criminal"],
    "description": {
        "age_estimate": 15,
        "gender": "male",
        "height_cm": 168,
        "clothing": "black puffer jacket",
        "languages": ["vi"],
    },
}


def placement(child_id: str, care_home: str = "OAK") -> dict:
    """The data of `placement.started` for a child at high risk, with hourly check-ins."""
    return {
        "placement_id": f"{child_id}-P1",
        "care_home": care_home,
        "risk": {"level": "high", "factors": ["recently identified", "trafficker known"]},
        "checkin_interval_minutes": 60,
    }


def _minutes(value: float, scale: float | None) -> str:
    """A policy duration of `value` minutes; with a scale, that many seconds per minute."""
    return f"{int(value)}m" if scale is None else f"{round(value * scale)}s"


def directory(
    scale: float | None = None,
    extra_unless_ack_step: bool = False,
    watchers: dict[str, str | int] | None = None,
) -> tuple[dict, dict]:
    """The config file's content and the made-up API key of every user.

    `scale` is seconds per policy minute (0.2 makes the golden hour 12 seconds); None is real time.
    `watchers` overrides keys of the `watchers:` block (e.g. `{"placement_within": "2s"}`).
    """
    keys: dict[str, str] = {}

    def users(code: str) -> list[dict]:
        out = []
        for user_id, name, roles in USERS.get(code, []):
            keys[user_id] = f"gh_{secrets.token_urlsafe(24)}"
            out.append(
                {
                    "id": user_id,
                    "name": name,
                    "roles": roles,
                    "api_key_sha256": hash_api_key(keys[user_id]),
                }
            )
        return out

    steps: list[dict[str, Any]] = [
        {
            "after": _minutes(0, scale),
            "notify": ["police.control_room", "local_authority.duty_manager", "care_home.manager"],
            "channels": ["sms", "email"],
        },
        {
            "after": _minutes(15, scale),
            "notify": ["police.missing_persons_unit", "local_authority.head_of_service"],
            "channels": ["sms", "email"],
            "unless_acknowledged": True,
        },
        {"after": _minutes(30, scale), "share": "neighbours"},
    ]
    if extra_unless_ack_step:
        steps.append(
            {
                "after": _minutes(45, scale),
                "notify": ["police.missing_persons_unit"],
                "channels": ["sms"],
                "unless_acknowledged": True,
            }
        )
    steps.append(
        {
            "after": _minutes(60, scale),
            "notify": ["national.missing_persons_unit"],
            "channels": ["sms", "email"],
        }
    )
    renotify = {"renotify_every": _minutes(10, scale), "renotify_max": 3}
    config = {
        "timezone": "Europe/London",
        "organisations": [
            {
                "code": "LBH",
                "kind": "local_authority",
                "name": "Hackney Children's Services",
                "police": "MPS",
                "neighbours": ["LBI"],
                "users": users("LBH"),
                "contacts": CONTACTS["LBH"],
            },
            {
                "code": "LBI",
                "kind": "local_authority",
                "name": "Islington Children's Services",
                "police": "MPS",
                "neighbours": ["LBH"],
                "users": users("LBI"),
                "contacts": CONTACTS["LBI"],
            },
            {
                "code": "MPS",
                "kind": "police",
                "name": "Metropolitan Police",
                "users": users("MPS"),
                "contacts": CONTACTS["MPS"],
            },
            {
                "code": "OAK",
                "kind": "care_home",
                "name": "Oak House",
                "local_authority": "LBH",
                "users": users("OAK"),
                "contacts": CONTACTS["OAK"],
            },
            {
                "code": "ELM",
                "kind": "care_home",
                "name": "Elm Lodge",
                "local_authority": "LBI",
                "users": users("ELM"),
                "contacts": [],
            },
            {
                "code": "UKMPU",
                "kind": "national",
                "name": "UK Missing Persons Unit",
                "contacts": CONTACTS["UKMPU"],
            },
        ],
        "policies": {"high": {**renotify, "steps": steps}},
        "watchers": dict(watchers or {}),
    }
    return config, keys


def event(event_type: str, child_id: str, data: dict, at: datetime | None = None) -> dict:
    """An intake event envelope."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "schema_version": 1,
        "occurred_at": (at or datetime.now(UTC)).isoformat(),
        "child_id": child_id,
        "data": data,
    }
