"""Steps known by their stable keys: a risk change or a reordered policy neither repeats nor drops
a due step, and a catch-up step tells each contact once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from goldenhour.contracts.policy import Policy, Step
from goldenhour.streams.escalation import (
    ClockState,
    Recipient,
    allot,
    first_step_key,
    legacy_keys,
    plan,
    step_of,
)
from tests.unit.streams.clock_states import clock_state

T0 = datetime(2026, 11, 22, 21, 40, tzinfo=UTC)
M = timedelta(minutes=1)
BOTH = ["sms", "email"]
FIRST = ["police.control_room", "local_authority.duty_manager", "care_home.manager"]
PEOPLE = {
    "police.control_room": "mps-cr",
    "local_authority.duty_manager": "lbh-duty",
    "care_home.manager": "oak-mgr",
    "police.missing_persons_unit": "mps-mpu",
    "local_authority.head_of_service": "lbh-head",
    "national.missing_persons_unit": "ukmpu",
}


def step(after: int, notify: list[str] | None = None, **kw) -> dict:
    out: dict = {"after": f"{after}m", **kw}
    if notify:
        out |= {"notify": notify, "channels": BOTH}
    return out


def policy(*steps: dict) -> Policy:
    return Policy.model_validate({"renotify_every": "10m", "renotify_max": 3, "steps": steps})


HIGH = policy(
    step(0, FIRST),
    step(
        15,
        ["police.missing_persons_unit", "local_authority.head_of_service"],
        unless_acknowledged=True,
    ),
    step(30, share="neighbours"),
    step(60, ["national.missing_persons_unit"]),
)
MEDIUM = policy(step(0, FIRST), step(30, ["local_authority.head_of_service"]))


def resolve(target: str) -> list[Recipient]:
    contact = PEOPLE.get(target)
    return (
        [Recipient(contact, contact[:3].upper(), "+447700900000", "x@example")] if contact else []
    )


def state(**kw) -> ClockState:
    return clock_state(T0, **kw)


def keys(p: Policy) -> list[str]:
    return [s.key for s in p.steps]


def test_a_step_keeps_its_key_wherever_it_sits_in_the_policy():
    inserted = policy(step(0, FIRST), step(10, ["police.missing_persons_unit"]), *HIGH.steps[1:])
    assert keys(inserted)[0] == keys(HIGH)[0] and keys(inserted)[2:] == keys(HIGH)[1:]
    # The same step in two policies is one step: medium's first is high's first.
    assert first_step_key(MEDIUM) == first_step_key(HIGH)
    assert keys(MEDIUM)[1] not in keys(HIGH)


def test_legacy_positional_keys_name_the_steps_at_those_positions():
    found = legacy_keys(HIGH, ["s0", "s1", "s9", "r1", "stand_down", "fallback", "s01x"])
    assert found == {"s0": keys(HIGH)[0], "s1": keys(HIGH)[1]}


def test_a_reordered_policy_fires_only_the_step_it_did_not_have():
    decided = frozenset(keys(HIGH)[:3])  # 0, 15 and 30 minutes fired under the old order
    inserted = policy(step(0, FIRST), step(10, ["police.missing_persons_unit"]), *HIGH.steps[1:])
    decision = plan(inserted, state(decided=decided, first_fired_at=T0), T0 + 40 * M)
    assert decision.fire == (keys(inserted)[1],)  # the new 10-minute step: due, not dropped
    assert decision.next_due_at is not None


def test_medium_to_high_at_31_minutes_fires_the_15_minute_step_at_once_telling_each_once():
    """The issue's example: medium fired its 0- and 30-minute steps; the child is raised to high
    at +31 min. High's 15-minute step (missing persons unit) fires now, and its head of service,
    already told by medium's 30-minute step, is not told again; the sharing step catches up."""
    now = T0 + 31 * M
    decided = frozenset(keys(MEDIUM))
    told = [
        (r, ch)
        for t in FIRST + ["local_authority.head_of_service"]
        for r in resolve(t)
        for ch in BOTH
    ]
    s = state(decided=decided, first_fired_at=T0, renotify_done=3, policy_since=now)
    decision = plan(HIGH, s, now)
    assert decision.fire == (keys(HIGH)[1], keys(HIGH)[2])
    assert decision.catch_up == decision.fire
    out = allot(HIGH, decision, resolve, told)
    assert [(d.recipient.contact_id, d.channel, d.step_key) for d in out.items] == [
        ("mps-mpu", "sms", keys(HIGH)[1]),
        ("mps-mpu", "email", keys(HIGH)[1]),
    ]
    assert out.withheld == {keys(HIGH)[1]: [("lbh-head", "sms"), ("lbh-head", "email")]}
    assert decision.next_due_at == T0 + 60 * M

    # Back to medium and up to high again: every step of either is decided, nothing repeats.
    decided |= set(decision.fire)
    for p in (MEDIUM, HIGH):
        again = plan(
            p,
            state(decided=decided, first_fired_at=T0, renotify_done=3, policy_since=now + M),
            now + M,
        )
        assert again.fire == () and again.skip == ()


def test_a_step_due_after_the_change_tells_everyone_it_names():
    changed = T0 + 5 * M
    s = state(decided=frozenset(keys(MEDIUM)[:1]), first_fired_at=T0, policy_since=changed)
    decision = plan(HIGH, s, T0 + 15 * M)
    assert decision.fire == (keys(HIGH)[1],) and decision.catch_up == ()
    told = [(r, "sms") for r in resolve("local_authority.head_of_service")]
    out = allot(HIGH, decision, resolve, told)
    assert {d.recipient.contact_id for d in out.items} == {"mps-mpu", "lbh-head"}
    assert out.withheld == {}


# --- any policy, any change -------------------------------------------------------------------

TARGETS = sorted(PEOPLE)
steps_st = st.builds(
    lambda after, notify, unless, share: (
        step(after, share="neighbours")
        if share
        else step(after, sorted(notify), unless_acknowledged=unless)
    ),
    st.sampled_from([0, 5, 15, 30, 45, 60]),
    st.sets(st.sampled_from(TARGETS), min_size=1, max_size=3),
    st.booleans(),
    st.integers(0, 4).map(lambda n: n == 0),  # one step in five shares
)


def _policy_of(raw: list[dict]) -> Policy:
    unique: dict[str, dict] = {}
    for s in sorted(raw, key=lambda s: int(s["after"][:-1])):
        unique.setdefault(Step.model_validate(s).key, s)
    return policy(*unique.values())


policies_st = st.lists(steps_st, min_size=1, max_size=6).map(_policy_of)
# Each event: minutes after the anchor, then a policy to switch to (None: a plain wake), and
# whether someone acknowledges then.
events_st = st.lists(
    st.tuples(st.integers(0, 90), st.none() | st.integers(0, 3), st.booleans()),
    min_size=1,
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(policies_st, min_size=4, max_size=4), events_st)
def test_no_step_fires_twice_no_due_step_is_left_and_catch_up_tells_each_once(pool, events):
    current = pool[0]
    decided: set[str] = set()
    told: set[tuple[str, str]] = set()
    since = None
    acked = False
    fired: list[str] = []
    for minute, switch, ack in sorted(events, key=lambda e: e[0]) + [(200, None, False)]:
        now = T0 + minute * M
        if switch is not None and pool[switch] is not current:
            current, since = pool[switch], now
        acked = acked or ack
        s = state(
            decided=frozenset(decided),
            acknowledged=acked,
            first_fired_at=T0,
            renotify_done=3,
            policy_since=since,
        )
        decision = plan(current, s, now)
        assert not set(decision.fire) & decided
        assert not set(decision.skip) & decided
        assert len(set(decision.fire)) == len(decision.fire)
        before = {(r.contact_id, ch) for r, ch in _told(told)}
        out = allot(current, decision, resolve, _told(told))
        for d in out.items:
            due = T0 + step_of(current, d.step_key).after if d.step_key in decision.fire else now
            if since is not None and due < since:  # a catch-up: each contact once
                assert (d.recipient.contact_id, d.channel) not in before
        fired += decision.fire
        decided |= set(decision.fire) | set(decision.skip)
        told |= {(d.recipient.contact_id, d.channel) for d in out.items}
        for step_ in current.steps:
            if T0 + step_.after <= now:
                assert step_.key in decided, "a due step was left undecided"
    assert len(fired) == len(set(fired))


def _told(pairs: set[tuple[str, str]]) -> list[tuple[Recipient, str]]:
    return [
        (Recipient(c, c[:3].upper(), "+447700900000", "x@example"), ch) for c, ch in sorted(pairs)
    ]
