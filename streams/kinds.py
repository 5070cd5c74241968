"""The kinds of alert and the escalation policy each follows.

A missing child's alert follows the configured policy for the child's risk level; the others
follow policies built from the `watchers:` block, unless the config file names one (only
`identification` can be configured today).
"""

from __future__ import annotations

from contracts.config import GoldenHourConfig
from contracts.policy import Policy

MISSING = "missing"
KINDS = (
    MISSING,
    "identification",
    "missed_checkin",
    "curfew",
    "risk_signal",
    "strategy_meeting",
    "return_interview",
)

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
