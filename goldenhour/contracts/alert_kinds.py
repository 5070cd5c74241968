"""The kinds of alert: their names, what people call them, the escalation policy each follows,
and the keys of the steps an alert's clock records.

A missing child's alert follows the configured policy for the child's risk level; the others
follow policies built from the `watchers:` block, unless the config file names one (only
`identification` can be configured today).
"""

from __future__ import annotations

from enum import StrEnum

from goldenhour.contracts.config import GoldenHourConfig
from goldenhour.contracts.policy import Policy


class AlertKind(StrEnum):
    """What an alert is about; stored as its value in `alerts.kind`."""

    MISSING = "missing"
    IDENTIFICATION = "identification"
    MISSED_CHECKIN = "missed_checkin"
    CURFEW = "curfew"
    RISK_SIGNAL = "risk_signal"
    STRATEGY_MEETING = "strategy_meeting"
    RETURN_INTERVIEW = "return_interview"


MISSING = AlertKind.MISSING

# Keyed by plain strings too: `alerts.kind` is read back from the database as text.
HEADLINES: dict[str, str] = {
    AlertKind.MISSING: "GOLDEN HOUR ALERT",
    AlertKind.IDENTIFICATION: "GOLDEN HOUR: NO SAFE PLACEMENT",
    AlertKind.MISSED_CHECKIN: "WELFARE CONCERN",
    AlertKind.CURFEW: "WELFARE CONCERN",
    AlertKind.RISK_SIGNAL: "RISK ALERT",
    AlertKind.STRATEGY_MEETING: "STRATEGY MEETING NEEDED",
    AlertKind.RETURN_INTERVIEW: "RETURN INTERVIEW DUE",
}
LABELS: dict[str, str] = {
    AlertKind.MISSING: "missing-child alert",
    AlertKind.IDENTIFICATION: "identification alert",
    AlertKind.MISSED_CHECKIN: "welfare concern (missed check-in)",
    AlertKind.CURFEW: "welfare concern (curfew)",
    AlertKind.RISK_SIGNAL: "risk alert",
    AlertKind.STRATEGY_MEETING: "strategy meeting prompt",
    AlertKind.RETURN_INTERVIEW: "return interview reminder",
}


# Keys of the timeline lines that are not policy steps.
FALLBACK = "fallback"
"""The message sent when an alert's clock keeps failing."""
STAND_DOWN = "stand_down"
"""The stand-down to everyone told, when an alert is resolved."""
LAST_SEEN_AHEAD = "last_seen_ahead"
"""The last-seen time given was after the report was accepted."""
WITHHELD_PREFIX = "withheld_"
"""Text the screen withheld: `withheld_sms`, `withheld_share_v2`."""


def renotify_key(round_: int) -> str:
    """The stable key of a re-notification round."""
    return f"r{round_}"


def is_renotify_key(key: str) -> bool:
    """Whether `key` names a re-notification round (`r1`, `r2`…), not a step."""
    return key[:1] == "r" and key[1:].isdigit()


def renotify_round(key: str) -> int:
    """The round a re-notification key names (`r2` is 2)."""
    if not is_renotify_key(key):
        raise ValueError(f"{key!r} is not a re-notification key")
    return int(key[1:])


def position_key(index: int) -> str:
    """The key older alerts recorded a step by: its place in the policy (`s0` the first)."""
    return f"s{index}"


_BOTH = ["sms", "email"]


def _policy(steps: list[dict], renotify: Policy | None = None) -> Policy:
    return Policy.model_validate(
        {
            "steps": steps,
            "renotify_every": renotify.renotify_every if renotify else None,
            "renotify_max": renotify.renotify_max if renotify else 0,
        }
    )


def policy_for_alert(config: GoldenHourConfig, kind: str, risk_level: str) -> Policy:
    """The policy an alert of `kind` follows now (a risk change applies to later steps)."""
    w = config.watchers
    identification = config.policies.get("identification") or _policy(
        [
            {
                "after": 0,
                "notify": ["local_authority.duty_manager", "police.control_room"],
                "channels": _BOTH,
            }
        ],
        config.policies["high"],
    )
    if kind == MISSING:
        return config.policy_for(risk_level)
    if kind == "identification":
        return identification
    if kind in ("missed_checkin", "curfew"):
        return _policy(
            [
                {
                    "after": 0,
                    "notify": ["care_home.manager", "local_authority.social_worker"],
                    "channels": _BOTH,
                },
                # Only a check-in or an absence report closes a concern: an ACK alone does not
                # tell anyone where the child is, so the duty manager is told all the same.
                {
                    "after": int(w.concern_escalate_after.total_seconds()),
                    "notify": ["local_authority.duty_manager"],
                    "channels": _BOTH,
                },
            ]
        )
    if kind == "risk_signal":
        return _policy(
            [
                {
                    "after": 0,
                    "notify": ["police.control_room", "local_authority.duty_manager"],
                    "channels": _BOTH,
                }
            ],
            identification,
        )
    if kind == "strategy_meeting":
        return _policy(
            [
                {
                    "after": 0,
                    "notify": ["local_authority.duty_manager", "local_authority.social_worker"],
                    "channels": _BOTH,
                }
            ]
        )
    if kind == "return_interview":
        overdue = w.return_interview_due - w.return_interview_reminder
        return _policy(
            [
                {"after": 0, "notify": ["local_authority.social_worker"], "channels": _BOTH},
                {
                    "after": int(overdue.total_seconds()),
                    "notify": ["local_authority.duty_manager"],
                    "channels": _BOTH,
                },
            ]
        )
    raise ValueError(f"unknown alert kind {kind!r}")
