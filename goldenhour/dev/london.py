"""The London fixtures: a small directory (Hackney, Islington, the Met, two children's homes,
the national missing persons unit) with made-up API keys and on-call rotas for Hackney's duty
managers and the Met's control room, and the events posted about a child.

The policy's minutes can be scaled down to seconds so a golden hour passes quickly.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
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

# Those the rotas below keep off call this week: paged only when an override or a swap puts them
# on, or when their week comes.
ROTA_CONTACTS = {
    "LBH": [
        {
            "id": "lbh-edt-2",
            "role": "duty_manager",
            "phone": "+447700900004",
            "email": "edt2@lbh.example",
        }
    ],
    "MPS": [
        {
            "id": "mps-cr-2",
            "role": "control_room",
            "phone": "+447700900012",
            "email": "cr2@mps.example",
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
    # An age assessment's estimate, as it often is; for the statutory return only.
    "date_of_birth": "2011-03-01",
    "date_of_birth_estimated": True,
    "ssda903_id": "LBH0042",
    "description": {
        "age_estimate": 15,
        "gender": "male",
        "height_cm": 168,
        "clothing": "black puffer jacket",
        "languages": ["vi"],
    },
}


def identified_as(ssda903_id: str, **more: object) -> dict:
    """`IDENTIFIED` for another child: its own SSDA903 id (two children never share one)."""
    return {**IDENTIFIED, "ssda903_id": ssda903_id, **more}


def placement(child_id: str, care_home: str = "OAK") -> dict:
    """The data of `placement.started` for a child at high risk, with hourly check-ins."""
    return {
        "placement_id": f"{child_id}-P1",
        "care_home": care_home,
        "risk": {"level": "high", "factors": ["recently identified", "trafficker known"]},
        "checkin_interval_minutes": 60,
    }


def rotas(now: datetime) -> dict[str, list[dict]]:
    """Hackney's duty managers and the Met's control room on call by rotas, each member a week
    in turn. The rotas start three days before `now`: every shift starting in the week from
    then is the first member's, so lbh-duty and mps-cr are on call for the demo and the tests,
    whatever the weekday, and the others only by an override or a swap."""
    starts = (now - timedelta(days=3)).isoformat()
    weekdays = ["mon", "tue", "wed", "thu"]
    return {
        "LBH": [
            {
                "id": "lbh-duty-rota",
                "role": "duty_manager",
                # Day duty on weekdays; the emergency duty team nights and the whole weekend.
                "shifts": [
                    {"days": [*weekdays, "fri"], "start": "09:00", "end": "17:00"},
                    {"days": weekdays, "start": "17:00", "end": "09:00"},
                    {"days": ["fri"], "start": "17:00", "end": "mon 09:00"},
                ],
                "bank_holidays": {"calendar": "england_and_wales"},
                "members": ["lbh-duty", "lbh-edt-2"],
                "advance": "per_week",
                "starts": starts,
                "fallback": "lbh-head",
            }
        ],
        "MPS": [
            {
                "id": "mps-control-room",
                "role": "control_room",
                "shifts": [
                    {"days": WEEK, "start": "07:00", "end": "19:00"},
                    {"days": WEEK, "start": "19:00", "end": "07:00"},
                ],
                "members": ["mps-cr", "mps-cr-2"],
                "advance": "per_week",
                "starts": starts,
                "fallback": "mps-mpu",
            }
        ],
    }


WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


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

    on_call = rotas(datetime.now(UTC))
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
                "contacts": CONTACTS["LBH"] + ROTA_CONTACTS["LBH"],
                "rotas": on_call["LBH"],
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
                "contacts": CONTACTS["MPS"] + ROTA_CONTACTS["MPS"],
                "rotas": on_call["MPS"],
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
