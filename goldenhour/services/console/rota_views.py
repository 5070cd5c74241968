"""What the console shows of a rota, in words: who is on now, the stretches of the next days,
the live changes, and the override, swap and temporary schedule forms read into the API's
requests with the API's checks.

Pure: the rota, its change rows and `now` in, what the page shows out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from goldenhour.contracts.config import GoldenHourConfig, Organisation
from goldenhour.contracts.oncall import NO_CHANGES, Changes, Segment, Shift, shifts, timeline
from goldenhour.contracts.rota_api import OverrideRequest, SwapRequest, SwapTake, TemporaryRequest
from goldenhour.contracts.rotas import Rota

AHEAD = timedelta(days=14)
MICROSECOND = timedelta(microseconds=1)
# The longest reason the API takes (ShortText).
REASON_MAX = 120
# The rows of shifts the temporary schedule form offers; rows left empty are ignored.
SHIFT_ROWS = 6

KIND_WORDS = {"override": "override", "swap": "swap", "temporary": "temporary schedule"}
ACTIONS = {
    "replace": "Replace someone (they come off, another goes on)",
    "add": "Add someone (both are on)",
    "remove": "Remove someone (they come off)",
}


def role_words(role: str) -> str:
    """`duty_manager` as a person says it: "duty manager"."""
    return role.replace("_", " ")


@dataclass(frozen=True)
class OnNow:
    """Who of a rota is on at an instant, as the header and the rota page say it."""

    rota_id: str
    role: str
    members: tuple[str, ...]
    covered: bool
    fallback: bool
    source: str
    # The end of the stretch, where the page looked far enough ahead to know it.
    until: datetime | None = None

    @property
    def summary(self) -> str:
        """The words after "Duty manager on call:"."""
        if self.fallback:
            return f"nobody on: fallback {', '.join(self.members)} is paged"
        if not self.covered:
            return f"nobody by the rota: every {self.role} is paged"
        return ", ".join(self.members)


def on_now(rota: Rota, segment: Segment, until: datetime | None = None) -> OnNow:
    return OnNow(
        rota.id,
        role_words(rota.role),
        tuple(sorted(segment.members)),
        segment.covered,
        segment.fallback,
        segment.source,
        until,
    )


def on_call_at(rota: Rota, tz: ZoneInfo, at: datetime, changes: Changes = NO_CHANGES) -> OnNow:
    """Who is on at `at` by the changes active then: as the API's `/rotas` resolves it."""
    return on_now(rota, timeline(rota, tz, at, at + MICROSECOND, changes)[0])


def on_call_header(
    config: GoldenHourConfig, org: Organisation, at: datetime, active: Mapping[str, Changes]
) -> list[OnNow]:
    """Each of `org`'s rotas with who is on at `at`, by `active` (rota_changes.active_at)."""
    return [on_call_at(r, config.tz, at, active.get(r.id, NO_CHANGES)) for r in org.rotas]


@dataclass(frozen=True)
class Stretch:
    """A row of the rota page's table: who is on over [start, end), and why, if not the rota."""

    start: datetime
    end: datetime
    members: tuple[str, ...]
    # Who the rota's pattern has then, when a change put someone else on.
    instead_of: str | None
    # The kinds of change that made it so ("override", "swap", "temporary schedule").
    changed_by: tuple[str, ...]
    gap: bool
    covered: bool
    bank_holiday: bool


def stretches(segments: Iterable[Segment], rows: Sequence[Mapping]) -> list[Stretch]:
    """The timeline's segments as rows, each changed one with the kinds of the active changes
    over it (as the API's `change_ids`)."""
    out = []
    for seg in segments:
        changed: tuple[str, ...] = ()
        if seg.source == "temporary":
            changed = (KIND_WORDS["temporary"],)
        elif seg.source == "override":
            kinds = {
                r["kind"]
                for r in rows
                if r["status"] == "active"
                and r["kind"] != "temporary"
                and r["start_at"] < seg.end
                and r["end_at"] > seg.start
            }
            changed = tuple(KIND_WORDS[k] for k in sorted(kinds)) or (KIND_WORDS["override"],)
        replaced = seg.pattern_member if changed and seg.pattern_member not in seg.members else None
        out.append(
            Stretch(
                seg.start,
                seg.end,
                tuple(sorted(seg.members)),
                replaced,
                changed,
                seg.fallback,
                seg.covered,
                seg.bank_holiday,
            )
        )
    return out


@dataclass(frozen=True)
class ChangeLine:
    """A live or proposed change, as the page lists it."""

    change_id: uuid.UUID
    kind: str
    what: str
    start: datetime
    end: datetime
    status: str
    reason: str | None
    made_by: str
    # Whose shift or turn it changes (for a swap, who may not take it).
    member: str | None = None


def change_words(row: Mapping) -> str:
    """What a change does, in a sentence: "Replace lbh-duty with lbh-edt-2"."""
    member, by = row["member"], row["by_member"]
    if row["kind"] == "temporary":
        people = sorted({s["member"] for s in row["shifts"] or ()})
        return f"Temporary schedule: only its own shifts count ({', '.join(people) or 'nobody'})"
    if row["kind"] == "swap":
        if row["status"] == "proposed":
            return f"Swap asked: {member}'s shift needs someone to take it"
        return f"Swap: {by} takes {member}'s shift"
    if row["action"] == "add":
        return f"Add {member}"
    if row["action"] == "remove":
        return f"Remove {member}"
    return f"Replace {member} with {by}"


def made_by(config: GoldenHourConfig, actor: str) -> str:
    user_id = actor.removeprefix("user:")
    found = config.user(user_id)
    return (found[1].name or user_id) if found else user_id


def change_lines(config: GoldenHourConfig, rows: Iterable[Mapping]) -> list[ChangeLine]:
    return [
        ChangeLine(
            r["change_id"],
            r["kind"],
            change_words(r),
            r["start_at"],
            r["end_at"],
            r["status"],
            r["reason"],
            made_by(config, r["created_by"]),
            r["member"],
        )
        for r in rows
    ]


# --- the override form ------------------------------------------------------------------------


class FormProblems(Exception):
    """What is wrong with a posted form: field name ("form" for the whole) → words."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def _local(value: str, tz: ZoneInfo) -> str | None:
    """A `datetime-local` value read in the config's zone; blank is None, and anything that is
    not a time is passed on as typed, for the request's validation to name."""
    text = value.strip()
    if not text:
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        return text
    return (naive if naive.tzinfo else naive.replace(tzinfo=tz)).isoformat()


PAST_END = (
    "This end is past: who was on call then is the record of who was paged. "
    "Choose an end still to come."
)

# Errors of the request's model checks, which pydantic places on no field, by the field the
# form shows them beside.
_WHOLE_FIELD = {"range_order": "end", "range_length": "end", "override_by": "by"}


def _words(error: Mapping, form: Mapping[str, str]) -> tuple[str, str]:
    """(field, what is wrong) for one validation error of OverrideRequest, as the form says it."""
    kind = error["type"]
    field = str(error["loc"][-1]) if error["loc"] else _WHOLE_FIELD.get(kind, "form")
    if kind == "missing":
        return field, "Required."
    if kind == "override_by":
        if form.get("action") == "replace" and not form.get("by", "").strip():
            return field, "Choose who takes over from the person replaced."
        if form.get("by", "").strip() == form.get("member", "").strip():
            return field, "Choose someone other than the person replaced."
        return field, "Leave this empty unless you replace someone."
    if kind == "range_order":
        return field, "The end must be after the start."
    if kind == "range_length":
        return field, "A change spans at most 366 days."
    if kind.startswith("datetime") or kind in ("instant", "timezone_aware"):
        return field, "Give a date and time."
    if field in ("member", "by") or kind == "literal_error":
        return field, "Choose from the list."
    if kind == "string_too_long":
        return field, f"At most {REASON_MAX} characters."
    return field, error["msg"]


def override_request(form: Mapping[str, str], tz: ZoneInfo) -> OverrideRequest:
    """The API's request for a posted override form; raises FormProblems."""
    raw: dict[str, object] = {
        "action": form.get("action", ""),
        "member": form.get("member", "").strip(),
        "by": form.get("by", "").strip() or None,
        "reason": form.get("reason", "").strip() or None,
    }
    for name in ("start", "end"):
        at = _local(form.get(name, ""), tz)
        if at is not None:
            raw[name] = at
    try:
        return OverrideRequest.model_validate(raw)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            field, words = _words(error, form)
            problems.setdefault(field, words)
        raise FormProblems(problems) from None


def check_override(org: Organisation, rota: Rota, body: OverrideRequest, now: datetime) -> None:
    """The API's own checks (rotas_api), in the form's words: each person a contact of the
    rota's role in `org`, and an end not past; raises FormProblems."""
    problems = {}
    for field in ("member", "by"):
        who = getattr(body, field)
        if who is not None and not org.has_contact(who, rota.role):
            problems[field] = f"{who} is not a {role_words(rota.role)} contact of {org.code}."
    if body.end <= now:
        problems["end"] = PAST_END
    if problems:
        raise FormProblems(problems)


def clash_words(rows: Iterable[Mapping], local: Callable[[datetime], str]) -> str:
    """The sentence for a change refused as overlapping live ones (rota_changes.Clash)."""
    described = "; ".join(
        f"{change_words(r)}, {local(r['start_at'])} to {local(r['end_at'])}" for r in rows
    )
    return (
        f"Nothing was changed: this overlaps a live change for the same person ({described}). "
        "Withdraw that change first, or choose other times."
    )


def _plain(error: Mapping) -> str:
    """What is wrong with a typed field, for the errors every form shares."""
    kind = error["type"]
    if kind == "missing":
        return "Required."
    if kind == "range_order":
        return "The end must be after the start."
    if kind == "range_length":
        return "A change spans at most 366 days."
    if kind.startswith("datetime") or kind in ("instant", "timezone_aware"):
        return "Give a date and time."
    if kind == "string_too_long":
        return f"At most {REASON_MAX} characters."
    return error["msg"]


def _not_a_contact(org: Organisation, rota: Rota, who: str) -> str | None:
    if org.has_contact(who, rota.role):
        return None
    return f"{who} is not a {role_words(rota.role)} contact of {org.code}."


# --- asking for cover (a swap) and taking it --------------------------------------------------

NOT_THEIRS = "Choose someone other than the person whose shift it is."


def shift_value(shift: Shift) -> str:
    """A pattern shift as the swap form's select names it: whose it is and when it starts."""
    return f"{shift.member}@{shift.start.isoformat()}"


@dataclass(frozen=True)
class ShiftChoice:
    """A shift of the pattern still to end, as the swap form offers it."""

    value: str
    start: datetime
    end: datetime
    member: str
    # Started already: whoever the pattern has on now.
    now: bool
    bank_holiday: bool
    # A swap of it already asked for ("cover asked already") or taken ("swapped already").
    note: str | None


def shift_choices(
    rota: Rota, tz: ZoneInfo, now: datetime, rows: Sequence[Mapping]
) -> list[ShiftChoice]:
    """The pattern's shifts over the page's fortnight that have not ended, each marked with a
    swap of it already live or proposed (`rows`: the page's change rows)."""
    out = []
    for shift in shifts(rota, tz, now, now + AHEAD):
        swaps = {
            r["status"]
            for r in rows
            # Over the shift, not from its start: a swap of a shift under way counts from when
            # it was asked or taken.
            if r["kind"] == "swap"
            and r["member"] == shift.member
            and r["start_at"] < shift.end
            and r["end_at"] > shift.start
        }
        note = (
            "swapped already"
            if "active" in swaps
            else "cover asked already"
            if "proposed" in swaps
            else None
        )
        out.append(
            ShiftChoice(
                shift_value(shift),
                shift.start,
                shift.end,
                shift.member,
                shift.start <= now,
                shift.bank_holiday,
                note,
            )
        )
    return out


def swap_request(form: Mapping[str, str]) -> SwapRequest:
    """The API's request for a posted swap form; raises FormProblems."""
    member, _, at = form.get("shift", "").strip().partition("@")
    if not member or not at:
        raise FormProblems({"shift": "Choose a shift from the list."})
    raw = {
        "member": member,
        "shift_start": at,
        "by": form.get("by", "").strip() or None,
        "reason": form.get("reason", "").strip() or None,
    }
    try:
        return SwapRequest.model_validate(raw)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            name = str(error["loc"][0]) if error["loc"] else "form"
            if name in ("member", "shift_start"):
                problems.setdefault("shift", "Choose a shift from the list.")
            elif name == "by":
                problems.setdefault("by", "Choose from the list.")
            else:
                problems.setdefault(name, _plain(error))
        raise FormProblems(problems) from None


def _pattern_shift(rota: Rota, tz: ZoneInfo, start: datetime) -> Shift | None:
    found = shifts(rota, tz, start, start + MICROSECOND)
    return next((s for s in found if s.start == start), None)


def check_swap(
    org: Organisation, rota: Rota, tz: ZoneInfo, body: SwapRequest, now: datetime
) -> Shift:
    """The API's checks of a swap (rotas_api.propose_swap), in the form's words: the shift one
    of the pattern's, that member's by it, and not over; its taker, if named, a contact of the
    rota's role other than the member. The shift, or FormProblems."""
    problems: dict[str, str] = {}
    shift = _pattern_shift(rota, tz, body.shift_start)
    if (words := _not_a_contact(org, rota, body.member)) is not None:
        problems["shift"] = words
    elif shift is None:
        problems["shift"] = "No shift of this rota starts then: choose one from the list."
    elif shift.member != body.member:
        problems["shift"] = (
            f"That shift is {shift.member}'s by the rota, not {body.member}'s: "
            f"choose one of {body.member}'s shifts from the list."
        )
    elif shift.end <= now:
        problems["shift"] = (
            "This shift is over: who was on call then is the record of who was paged. "
            "Choose a shift still to come."
        )
    if body.by is not None:
        if (words := _not_a_contact(org, rota, body.by)) is not None:
            problems["by"] = words
        elif body.by == body.member:
            problems["by"] = NOT_THEIRS
    if problems or shift is None:
        raise FormProblems(problems)
    return shift


def swap_taker(form: Mapping[str, str], org: Organisation, rota: Rota, member: str) -> str:
    """Who takes a proposed swap of `member`'s shift, read as the API's `SwapTake` and checked
    as the API checks it; raises FormProblems."""
    by = form.get("by", "").strip()
    if not by:
        raise FormProblems({"by": "Choose who takes the shift."})
    try:
        body = SwapTake.model_validate({"by": by})
    except ValidationError:
        raise FormProblems({"by": "Choose from the list."}) from None
    if (words := _not_a_contact(org, rota, body.by)) is not None:
        raise FormProblems({"by": words})
    if body.by == member:
        raise FormProblems({"by": NOT_THEIRS})
    return body.by


# --- the temporary schedule form ------------------------------------------------------------


def _temporary_words(error: Mapping, rows: Sequence[int]) -> tuple[str, str]:
    """(field, what is wrong) for one validation error of TemporaryRequest; `rows` is the form
    row of each shift sent."""
    kind, loc = error["type"], error["loc"]
    if kind == "temporary_shift":
        return (
            f"shift-{rows[error['ctx']['i']]}",
            "This shift falls outside the schedule: keep it between the schedule's From and To.",
        )
    if not loc:
        return _WHOLE_FIELD.get(kind, "form"), _plain(error)
    if loc[0] != "shifts":
        return str(loc[0]), _plain(error)
    if len(loc) == 1:
        return "shifts", "Give at least one shift: who is on call during the schedule."
    row = f"shift-{rows[int(loc[1])]}"
    if len(loc) == 2:  # the shift's own range
        return f"{row}-end", _plain(error)
    if loc[2] == "member":
        return (
            f"{row}-member",
            "Choose who is on." if kind == "missing" else "Choose from the list.",
        )
    return f"{row}-{loc[2]}", _plain(error)


def temporary_request(form: Mapping[str, str], tz: ZoneInfo) -> tuple[TemporaryRequest, list[int]]:
    """The API's request for a posted temporary schedule form, and the form row of each of its
    shifts (rows left empty are not sent); raises FormProblems."""
    raw: dict[str, object] = {"reason": form.get("reason", "").strip() or None}
    for name in ("start", "end"):
        at = _local(form.get(name, ""), tz)
        if at is not None:
            raw[name] = at
    sent: list[dict[str, str]] = []
    rows: list[int] = []
    for n in range(1, SHIFT_ROWS + 1):
        typed = {k: form.get(f"shift-{n}-{k}", "").strip() for k in ("start", "end", "member")}
        if not any(typed.values()):
            continue
        shift = {k: at for k in ("start", "end") if (at := _local(typed[k], tz)) is not None}
        if typed["member"]:
            shift["member"] = typed["member"]
        sent.append(shift)
        rows.append(n)
    raw["shifts"] = sent
    try:
        return TemporaryRequest.model_validate(raw), rows
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            field, words = _temporary_words(error, rows)
            problems.setdefault(field, words)
        raise FormProblems(problems) from None


def check_temporary(
    org: Organisation, rota: Rota, body: TemporaryRequest, rows: Sequence[int], now: datetime
) -> None:
    """The API's checks of a temporary schedule (rotas_api.add_temporary), in the form's words:
    each shift's member a contact of the rota's role, and an end not past."""
    problems = {}
    for n, shift in zip(rows, body.shifts, strict=True):
        if (words := _not_a_contact(org, rota, shift.member)) is not None:
            problems[f"shift-{n}-member"] = words
    if body.end <= now:
        problems["end"] = PAST_END
    if problems:
        raise FormProblems(problems)


def temporary_clash_words(rows: Iterable[Mapping], local: Callable[[datetime], str]) -> str:
    """The sentence for a temporary schedule refused as overlapping a live one."""
    described = "; ".join(f"{local(r['start_at'])} to {local(r['end_at'])}" for r in rows)
    return (
        f"Nothing was changed: this overlaps a live temporary schedule ({described}). "
        "Only one can decide who is on at a time: withdraw that one first, or choose other times."
    )
