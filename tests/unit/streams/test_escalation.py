"""The golden-hour clock on a fake clock: catch-up, acknowledgement, re-notification, resolve."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.streams.escalation import ClockState, Plan, Recipient, allot, deliveries, plan
from tests.unit.streams.clock_states import clock_state

T0 = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
M = timedelta(minutes=1)


@dataclass
class Step:
    after: timedelta
    notify: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=lambda: ["sms", "email"])
    unless_acknowledged: bool = False
    share: str | None = None
    id: str | None = None

    @property
    def key(self) -> str:
        # Readable keys for the tests; the config's own derivation is tested with the config.
        return self.id or f"{int(self.after / M)}m"


@dataclass
class Policy:
    steps: list[Step]
    renotify_every: timedelta | None = 10 * M
    renotify_max: int = 3


HIGH = Policy(
    steps=[
        Step(0 * M, ["police.control_room", "local_authority.duty_manager", "care_home.manager"]),
        Step(
            15 * M,
            ["police.missing_persons_unit", "local_authority.head_of_service"],
            unless_acknowledged=True,
        ),
        Step(30 * M, [], [], share="neighbours"),
        Step(60 * M, ["national.missing_persons_unit"]),
    ]
)


def state(**kw) -> ClockState:
    return clock_state(T0, **kw)


def test_report_on_time_fires_first_step_and_wakes_at_the_next():
    decision = plan(HIGH, state(), T0 + 30 * 1e-3 * M)
    assert decision.fire == ("0m",)
    assert decision.renotify_round is None
    # The next wake is the earlier of the 15-minute step and the first re-notification.
    assert decision.next_due_at == T0 + 10 * M + 30 * 1e-3 * M


def test_late_report_fires_every_due_step_in_order_once():
    now = T0 + 40 * M
    decision = plan(HIGH, state(), now)
    assert decision.fire == ("0m", "15m", "30m")
    assert decision.renotify_round is None  # nobody was told before: nothing to remind
    assert decision.next_due_at == now + 10 * M


def test_catch_up_sends_one_message_per_contact_and_channel():
    twice = Policy(
        steps=[
            Step(0 * M, ["police.control_room"]),
            Step(15 * M, ["police.control_room", "local_authority.duty_manager"]),
        ]
    )
    people = {
        "police.control_room": [Recipient("mps-cr", "MPS", "+447700900010", "cr@mps.example")],
        "local_authority.duty_manager": [
            Recipient("lbh-duty", "LBH", "+447700900001", "duty@lbh.example")
        ],
    }
    decision = plan(twice, state(), T0 + 40 * M)
    out = deliveries(twice, decision, lambda t: people.get(t, []))
    pairs = [(d.recipient.contact_id, d.channel, d.step_key) for d in out]
    assert pairs == [
        ("mps-cr", "sms", "0m"),
        ("mps-cr", "email", "0m"),
        ("lbh-duty", "sms", "15m"),
        ("lbh-duty", "email", "15m"),
    ]


def test_acknowledged_alert_skips_unless_acknowledged_steps_but_still_shares():
    s = state(acknowledged=True, decided=frozenset({"0m"}), first_fired_at=T0)
    decision = plan(HIGH, s, T0 + 31 * M)
    assert decision.skip == ("15m",)
    assert decision.fire == ("30m",)
    assert decision.renotify_round is None
    assert decision.next_due_at == T0 + 60 * M


def test_renotify_every_interval_up_to_max():
    s = state(decided=frozenset({"0m"}), first_fired_at=T0)
    assert plan(HIGH, s, T0 + 9 * M).renotify_round is None
    first = plan(HIGH, s, T0 + 10 * M)
    assert first.renotify_round == 1
    after_first = state(decided=frozenset({"0m"}), first_fired_at=T0, renotify_done=1)
    assert plan(HIGH, after_first, T0 + 11 * M).next_due_at == T0 + 15 * M
    done = state(decided=frozenset({"0m", "15m", "30m"}), first_fired_at=T0, renotify_done=3)
    assert plan(HIGH, done, T0 + 45 * M).renotify_round is None
    assert plan(HIGH, done, T0 + 45 * M).next_due_at == T0 + 60 * M


def test_missed_renotify_rounds_collapse_into_one():
    s = state(decided=frozenset({"0m", "15m", "30m"}), first_fired_at=T0, renotify_done=0)
    decision = plan(HIGH, s, T0 + 35 * M)
    assert decision.renotify_round == 3  # rounds 1-3 all due: one reminder, counted as the last
    told = [(Recipient("mps-cr", "MPS", "+447700900010", "cr@mps.example"), "sms")]
    out = deliveries(HIGH, decision, lambda t: [], told)
    assert [(d.recipient.contact_id, d.step_key) for d in out] == [("mps-cr", "r3")]


def test_acknowledgement_stops_renotification():
    s = state(acknowledged=True, decided=frozenset({"0m"}), first_fired_at=T0)
    decision = plan(HIGH, s, T0 + 12 * M)
    assert decision.renotify_round is None
    assert decision.next_due_at == T0 + 15 * M  # only to record the skip of the 15-minute step


def test_resolved_alert_plans_nothing():
    assert plan(HIGH, state(resolved=True), T0 + 90 * M) == Plan()


def test_everything_decided_leaves_no_wake():
    s = state(decided=frozenset({"0m", "15m", "30m", "60m"}), first_fired_at=T0, renotify_done=3)
    assert plan(HIGH, s, T0 + 61 * M).next_due_at is None


@pytest.mark.parametrize(
    "minutes, fired",
    [
        (0, ("0m",)),
        (14, ("0m",)),
        (15, ("0m", "15m")),
        (30, ("0m", "15m", "30m")),
        (60, ("0m", "15m", "30m", "60m")),
    ],
)
def test_catch_up_boundaries(minutes, fired):
    assert plan(HIGH, state(), T0 + minutes * M).fire == fired


@given(st.lists(st.integers(min_value=0, max_value=180), min_size=1, max_size=12))
def test_any_sequence_of_wakes_fires_each_step_exactly_once(offsets):
    """However often or late the worker wakes, each step is decided once and never twice."""
    decided: set[str] = set()
    fired: list[str] = []
    first_fired_at = None
    done = 0
    for minute in sorted(offsets) + [200]:
        now = T0 + minute * M
        s = state(decided=frozenset(decided), first_fired_at=first_fired_at, renotify_done=done)
        decision = plan(HIGH, s, now)
        fired += decision.fire
        decided |= set(decision.fire + decision.skip)
        if decision.fire and first_fired_at is None:
            first_fired_at = now
        if decision.renotify_round is not None:
            assert decision.renotify_round > done
            done = decision.renotify_round
        if decision.next_due_at is not None:
            assert decision.next_due_at > now
    assert fired == ["0m", "15m", "30m", "60m"]
    assert done <= HIGH.renotify_max


# --- "Escalate now" -----------------------------------------------------------------------


def test_escalate_now_fires_the_next_pending_step_at_once():
    now = T0 + 5 * M
    decision = plan(HIGH, state(decided=frozenset({"0m"}), first_fired_at=T0, escalate=True), now)
    assert decision.fire == ("15m",) and decision.escalated == "15m"
    # The 30-minute step is still waited for; the re-notification clock runs on as before.
    assert decision.next_due_at == T0 + 10 * M


def test_escalate_now_fires_even_after_an_acknowledgement():
    acked = state(decided=frozenset({"0m"}), first_fired_at=T0, acknowledged=True, escalate=True)
    decision = plan(HIGH, acked, T0 + 5 * M)
    assert decision.fire == ("15m",) and decision.skip == ()


def test_escalate_now_fires_one_step_only_and_due_steps_still_fire():
    decision = plan(HIGH, state(escalate=True), T0 + 20 * M)
    # s0 and s1 were due; the request adds the next one not yet due, the sharing step.
    assert decision.fire == ("0m", "15m", "30m") and decision.escalated == "30m"
    assert decision.next_due_at is not None and decision.next_due_at >= T0 + 20 * M


def test_escalate_with_nothing_left_changes_nothing():
    every = frozenset({"0m", "15m", "30m", "60m"})
    decision = plan(HIGH, state(decided=every, first_fired_at=T0, escalate=True), T0 + 61 * M)
    assert decision.escalated is None and decision.fire == ()


def test_escalate_on_a_resolved_alert_fires_nothing():
    assert plan(HIGH, state(resolved=True, escalate=True), T0 + M).empty


def test_the_plan_says_when_the_alert_first_notified():
    now = T0 + 40 * M
    assert plan(HIGH, state(), now).first_fired_at == now
    earlier = T0 + 1 * M
    assert plan(HIGH, state(first_fired_at=earlier), now).first_fired_at == earlier
    # Only a sharing step due: nobody notified, so re-notification has not started.
    shared_only = Policy(steps=[Step(0 * M, [], [], share="neighbours")])
    assert plan(shared_only, state(), now).first_fired_at is None


def test_the_allotment_words_the_timeline_of_what_was_decided():
    people = {"police.control_room": [Recipient("mps-cr", "MPS", "+447700900010", "c@m.ex")]}
    now = T0 + 20 * M
    decision = plan(HIGH, state(acknowledged=True, escalated_by="duty"), now)
    rows = allot(HIGH, decision, lambda t: people.get(t, [])).steps
    assert [(r.key, r.status, r.due_at, r.decided_at) for r in rows] == [
        ("0m", "fired", T0, now),
        ("15m", "skipped", T0 + 15 * M, now),
    ]
    assert rows[0].detail == "told: mps-cr/sms, mps-cr/email"
    assert rows[1].detail == "acknowledged before it fell due"


def test_an_escalated_step_names_who_asked_and_a_shared_step_says_so():
    now = T0 + 1 * M
    decision = plan(HIGH, state(decided=frozenset({"0m", "15m"}), escalate=True), now)
    assert decision.escalated == "30m"
    [row] = allot(HIGH, decision, lambda t: []).steps
    assert row.detail == (
        "escalated now by None; shared alert to neighbouring authorities' subscribers"
    )


def test_a_renotification_round_is_a_timeline_row_naming_whom_it_reminded():
    told = [(Recipient("mps-cr", "MPS", "+447700900010", "c@m.ex"), "sms")]
    now = T0 + 12 * M
    decision = plan(HIGH, state(decided=frozenset({"0m"}), first_fired_at=T0), now)
    assert decision.renotify_round == 1 and decision.wants_told
    [row] = allot(HIGH, decision, lambda t: [], told).steps
    assert (row.key, row.status, row.due_at, row.detail) == (
        "r1",
        "fired",
        now,
        "re-notified: mps-cr/sms",
    )
