"""Escalation policies and watcher clocks, as written in GOLDENHOUR_CONFIG.

A policy is data: steps due a duration `after` the alert's anchor (the child's last-seen time),
each notifying `kind.role` recipients resolved from the child's own agencies, or sharing the
alert with neighbouring authorities.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from goldenhour.contracts.fields import Duration, format_duration

RECIPIENT_KINDS = frozenset({"care_home", "local_authority", "police", "national"})
"""The organisation kinds a policy may notify: the child's own agencies and the national units."""

POLICY_KEYS = frozenset({"high", "medium", "low", "identification"})
"""The policies a config may define: one per risk level, and the identification golden hour."""


def _recipient(value: str) -> str:
    kind, dot, role = value.partition(".")
    # Named apart from the generic refusal so the log says why: this is the firewall.
    if kind == "immigration_enforcement":
        raise PydanticCustomError(
            "firewall",
            "'{value}': immigration_enforcement can never be a recipient",
            {"value": value},
        )
    if not dot or kind not in RECIPIENT_KINDS or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", role):
        raise PydanticCustomError(
            "recipient",
            "'{value}' is not kind.role with kind one of {kinds}",
            {"value": value, "kinds": ", ".join(sorted(RECIPIENT_KINDS))},
        )
    return value


Recipient = Annotated[str, AfterValidator(_recipient)]
"""A policy recipient `kind.role` resolved from the child's agencies: `police.control_room`."""


class ConfigEntry(BaseModel):
    """Base of config entries: a typo'd key is refused by name; entries are immutable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


StepId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9][a-z0-9_.-]{0,47}$")
]
"""A step's stable id as a config may give it: 1–48 of `[a-z0-9_.-]`, e.g. `missing-persons`."""

CHANNELS = ("sms", "voice", "email")
"""The channels a step may name, fastest first: a voice call reads the alert out."""


RESERVED_STEP_KEYS = re.compile(
    r"^([sr]\d+|stand_down|fallback|last_seen_ahead|share.*|unreachable.*|withheld.*)$"
)
"""Keys the clock gives its own rows: positions of older alerts (`s1`), re-notification rounds
(`r1`), stand-downs, fallbacks, timeline flags, sharing, unreachable and withheld-text notices."""


class Step(ConfigEntry):
    """One escalation step, due `after` the alert's anchor (the child's last-seen time)."""

    id: StepId | None = None
    after: Duration
    notify: list[Recipient] = Field(default_factory=list)
    channels: list[Literal["sms", "voice", "email"]] = Field(default_factory=list)
    unless_acknowledged: bool = False
    share: Literal["neighbours"] | None = None

    @property
    def key(self) -> str:
        """The step's stable identity: its `id`, else derived from what it does and when.

        Never its position, so a deploy that reorders or inserts steps neither repeats nor drops
        one, and a risk change can tell which steps of the new policy already fired. Channels
        are left out: adding email to a step that fired does not make it another step."""
        if self.id:
            return self.id
        what = f"share.{self.share}" if self.share else "+".join(sorted(self.notify))
        digest = hashlib.sha256(
            f"{format_duration(self.after)}|{what}|{self.unless_acknowledged}".encode()
        ).hexdigest()[:8]
        return f"{format_duration(self.after)}-{digest}"

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value is not None and RESERVED_STEP_KEYS.match(value):
            raise PydanticCustomError(
                "step_id", "step id '{value}' is one the clock keeps for itself", {"value": value}
            )
        return value

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        if not self.notify and self.share is None:
            raise PydanticCustomError("step", "a step must notify someone or share")
        if bool(self.notify) != bool(self.channels):
            raise PydanticCustomError("step", "notify and channels go together: give both")
        if len(set(self.channels)) != len(self.channels):
            raise PydanticCustomError("step", "a channel is listed twice")
        return self


class Policy(ConfigEntry):
    """An escalation policy, chosen by the child's risk level."""

    renotify_every: Duration | None = None
    renotify_max: int = Field(default=0, ge=0)
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _sorted(cls, steps: list[Step]) -> list[Step]:
        # Refused rather than sorted: a reader of the file must see the order the clock uses.
        for index in range(1, len(steps)):
            if steps[index].after < steps[index - 1].after:
                raise PydanticCustomError(
                    "steps_order",
                    "steps[{index}] (after {after}) is earlier than steps[{prev}]: "
                    "list steps in order of `after`",
                    {
                        "index": index,
                        "prev": index - 1,
                        "after": format_duration(steps[index].after),
                    },
                )
        seen: dict[str, int] = {}
        for index, step in enumerate(steps):
            if step.key in seen:
                raise PydanticCustomError(
                    "step_id",
                    "steps[{index}] is the same step as steps[{prev}] ({key}): "
                    "give one of them an `id`",
                    {"index": index, "prev": seen[step.key], "key": step.key},
                )
            seen[step.key] = index
        return steps

    @field_validator("renotify_every")
    @classmethod
    def _positive(cls, every: timedelta | None) -> timedelta | None:
        if every is not None and not every:
            raise PydanticCustomError("renotify", "renotify_every must be more than 0s")
        return every


class Watchers(ConfigEntry):
    """The placement-risk and return-interview clocks; every key optional."""

    placement_within: Duration = timedelta(minutes=60)
    checkin_grace: Duration = timedelta(minutes=15)
    concern_escalate_after: Duration = timedelta(minutes=15)
    checkin_interval_unit: Duration = timedelta(minutes=1)
    episodes_window: Duration = timedelta(days=90)
    episodes_threshold: int = Field(default=3, ge=1)
    return_interview_reminder: Duration = timedelta(hours=48)
    return_interview_due: Duration = timedelta(hours=72)


class Delivery(ConfigEntry):
    """How hard the dispatcher tries to reach a contact before a person is told it could not."""

    # An SMS Twilio has not accepted by then is followed by a call (and an email, when the
    # contact has one): a 2-minute provider outage must not cost the golden hour.
    sms_failover_after: Duration = timedelta(minutes=2)
    # Every channel to a contact failing this long: the child's duty manager (and the
    # operations contacts) are told who could not be reached.
    unreachable_after: Duration = timedelta(minutes=5)
