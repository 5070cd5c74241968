"""The chaos checks: each one reports the failure it exists to catch."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from goldenhour.chaos import config as chaos_config
from goldenhour.chaos import faults
from goldenhour.chaos.evidence import Note, Step
from goldenhour.chaos.faults import Window
from goldenhour.chaos.invariants import (
    calls_twice,
    failed_untold,
    lost_events,
    mail_duplicates,
    never_sent,
    sent_twice,
    sent_unverified,
    unmatched_sms,
)
from goldenhour.chaos.latency import (
    Probe,
    SmsLatency,
    first_received,
    first_sms_per_child,
    latency_split,
    per_kind,
    recovery,
    sms_late,
    sms_latency,
)
from goldenhour.chaos.lateness import (
    DueTimes,
    applied_late,
    applied_times,
    decided_late,
    lateness,
    step_lateness,
)
from goldenhour.contracts.config import GoldenHourConfig

A = "00000000-0000-0000-0000-00000000000a"
B = "00000000-0000-0000-0000-00000000000b"
C = "00000000-0000-0000-0000-00000000000c"
OWED = {
    ("high", "s0"): {(c, ch) for c in ("mps-cr", "lbh-duty") for ch in ("sms", "email")},
    ("high", "s3"): {("ukmpu", "sms"), ("ukmpu", "email")},
}
PARTS = ["api-1", "streams-1", "dispatcher-1", "dispatcher-2"]


def note(nid: str, step: str = "s0", contact: str = "mps-cr", channel: str = "sms", status="sent"):
    return Note(nid, A, "LBH-CX-0001", step, contact, channel, status)


def test_an_accepted_event_neither_applied_nor_dead_lettered_is_lost():
    accepted = ["e1", "e2", "e3"]
    assert lost_events(accepted, {"e1": 1.0, "e2": 2.0}, set()) == ["e3"]
    assert lost_events(accepted, {"e1": 1.0, "e2": 2.0}, {"e3"}) == []
    assert lost_events(accepted, {}, set()) == ["e1", "e2", "e3"]


def test_a_message_the_provider_never_received_is_never_sent_whatever_its_row_says():
    notes = [note("n1"), note("n2", status="pending"), note("n3", channel="email")]
    sms = Counter({"n1": 1})
    unsent = never_sent(notes, [], sms, Counter(), OWED)
    assert [(u.key[2], u.key[3], u.reason) for u in unsent] == [
        ("mps-cr", "sms", "provider has none (row pending)"),
        ("mps-cr", "email", "provider has none (row sent)"),
    ]
    mail = Counter({notes[2].message_id: 1})
    assert never_sent(notes, [], Counter({"n1": 1, "n2": 1}), mail, OWED) == []


def test_a_message_cancelled_by_a_stand_down_is_not_owed():
    assert never_sent([note("n1", status="cancelled")], [], Counter(), Counter(), OWED) == []


def test_a_fired_step_missing_a_message_it_owes_is_never_sent():
    fired = Step(A, "LBH-CX-0001", "s3", "fired", 10.0, 10.1)
    notes = [note("n1", "s3", "ukmpu", "sms")]
    unsent = never_sent(notes, [fired], Counter({"n1": 1}), Counter(), OWED)
    assert [(u.key, u.reason) for u in unsent] == [
        ((A, "s3", "ukmpu", "email"), "fired, no message")
    ]
    skipped = Step(A, "LBH-CX-0001", "s1", "skipped", 10.0, 10.1)
    assert never_sent([], [skipped], Counter(), Counter(), OWED) == []
    # Owed by policy: the same key fired under a policy that owes nothing owes nothing.
    other = Step(A, "LBH-CX-0001", "s3", "fired", 10.0, 10.1, policy="medium")
    assert never_sent([], [other], Counter(), Counter(), OWED) == []


def test_a_catch_up_step_owes_nothing_to_a_contact_already_told_on_that_channel():
    # Raised from medium, the alert had told mps-cr and lbh-duty by SMS and email under
    # medium's first step; high's first step fires as a catch-up and tells them nothing new.
    told = [
        note(f"n{i}", "0s-medium", contact, channel)
        for i, (contact, channel) in enumerate(
            (c, ch) for c in ("mps-cr", "lbh-duty") for ch in ("sms", "email")
        )
    ]
    mail = Counter({n.message_id: 1 for n in told if n.channel == "email"})
    sms = Counter({n.notification_id: 1 for n in told if n.channel == "sms"})
    catch_up = Step(A, "LBH-CX-0001", "s0", "fired", 10.0, 31.0)
    assert never_sent(told, [catch_up], sms, mail, OWED) == []
    # Another alert told nobody: the same step owes all four.
    elsewhere = Step(B, "LBH-CX-0002", "s0", "fired", 10.0, 10.1)
    assert len(never_sent(told, [elsewhere], sms, mail, OWED)) == 4


def test_a_call_is_judged_by_the_provider_and_is_not_owed_once_its_sms_got_through():
    sms = note("n1")
    call = Note("c1", A, "LBH-CX-0001", "s0", "mps-cr", "voice", "sent", failover_of="n1")
    assert [u.key[3] for u in never_sent([sms, call], [], Counter(), Counter(), OWED)] == [
        "sms",
        "voice",
    ]
    assert never_sent([sms, call], [], Counter({"n1": 1}), Counter(), OWED) == []
    lone = Note("c2", A, "LBH-CX-0001", "s0", "lbh-duty", "voice", "sent")
    assert [u.key[2] for u in never_sent([lone], [], Counter(), Counter(), OWED)] == ["lbh-duty"]
    assert never_sent([lone], [], Counter(), Counter(), OWED, Counter({"c2": 1})) == []


def test_two_calls_at_the_provider_for_one_step_and_contact_are_placed_twice():
    calls = [
        Note("c1", A, "LBH-CX-0001", "s0", "mps-cr", "voice", "sent"),
        Note("c2", A, "LBH-CX-0001", "s0", "lbh-duty", "voice", "sent"),
    ]
    # An SMS counted under a call's id does not make a call twice; two calls do.
    assert calls_twice([note("n1"), *calls], Counter({"n1": 2, "c1": 1})) == []
    assert calls_twice(calls, Counter({"c1": 1, "c2": 2})) == [((A, "s0", "lbh-duty", "voice"), 2)]


def test_a_failed_alert_message_must_have_a_person_told():
    failed = note("n1", status="failed")
    assert failed_untold([failed]) == [failed]
    told = Note("n2", A, "LBH-CX-0001", "s0", "mps-cr", "sms", "failed", unreachable_told_at=100.0)
    assert failed_untold([told]) == []
    notice = note("n3", "unreachable.mps-cr", "lbh-duty", "sms", "sent")
    assert failed_untold([failed, notice]) == []
    # A notice on another alert tells nobody about this one; a failure of no alert is the
    # subscription health's business.
    elsewhere = Note("n4", B, "LBH-CX-0002", "unreachable.x", "lbh-duty", "sms", "sent")
    assert failed_untold([failed, elsewhere]) == [failed]
    no_alert = Note("n5", None, None, "share", "lbi-duty", "webhook", "failed")
    assert failed_untold([no_alert]) == []
    # A failure somebody was told of is not also "never sent".
    assert never_sent([told], [], Counter(), Counter(), OWED) == []


def test_two_sms_at_the_provider_for_one_step_and_contact_are_sent_twice():
    notes = [note("n1"), note("n2", contact="lbh-duty")]
    assert sent_twice(notes, Counter({"n1": 1, "n2": 1})) == []
    assert sent_twice(notes, Counter({"n1": 1, "n2": 2})) == [((A, "s0", "lbh-duty", "sms"), 2)]


def test_a_second_copy_the_dispatcher_declared_is_counted_apart_from_one_it_did_not():
    declared = dataclasses.replace(note("n1"), unverified_sends=1)
    assert sent_twice([declared], Counter({"n1": 2})) == []
    assert sent_twice([declared], Counter({"n1": 3})) == [((A, "s0", "mps-cr", "sms"), 3)]
    received = Counter({"n1": 2, "n2": 1})
    assert sent_unverified([declared, note("n2")], received) == {
        "sms": {"sent": 1, "received_twice": 1}
    }
    once = {"sms": {"sent": 1, "received_twice": 0}}
    assert sent_unverified([declared], Counter({"n1": 1})) == once
    # One declared copy at most: a dispatcher never sends a message unverified twice.
    twice_declared = dataclasses.replace(note("n1"), unverified_sends=2)
    assert sent_twice([twice_declared], Counter({"n1": 3})) == [((A, "s0", "mps-cr", "sms"), 3)]
    assert sent_unverified([note("n2")], received) == {}


def test_sms_for_no_known_notification_and_repeated_mails_are_counted():
    assert unmatched_sms([note("n1")], Counter({"n1": 1, "zz": 2})) == 2
    assert mail_duplicates(Counter({"<a>": 1, "<b>": 3})) == 2


def test_lateness_counts_from_the_fault_end_or_the_report_whichever_is_later():
    pause = Window("01 broker_pause", "broker_pause", 100.0, 115.0)
    steps = [
        Step(A, "c1", "s0", "fired", 105.0, 116.5),  # due in the pause: 1.5 s after its end
        Step(A, "c2", "s0", "fired", 50.0, 51.0),  # outside any fault: 1 s
        Step(A, "c3", "s0", "fired", 30.0, 61.0),  # a late report accepted at 60: 1 s
        Step(A, "c4", "stand_down", "fired", 70.0, 74.0),  # its return accepted at 72: 2 s
    ]
    lates = step_lateness(steps, [pause], DueTimes({"c3": 60.0}, {"c4": 72.0}))
    per_fault, steady = lateness(lates, [pause])
    assert per_fault == {"01 broker_pause": 1.5}
    assert steady == 2.0


def test_a_step_due_soon_after_a_fault_belongs_to_it():
    kill = Window("01 kill_part(streams-1)", "kill_part", 100.0, 100.5)
    step = Step(A, "c1", "s1", "fired", 104.0, 109.0)
    per_fault, steady = lateness(step_lateness([step], [kill], DueTimes({}, {})), [kill])
    assert per_fault == {"01 kill_part(streams-1)": 5.0} and steady == 0.0


def test_recovery_from_the_fault_end_to_the_probe_applied_and_its_first_sms():
    probes = [
        Probe("01 broker_restart", "broker_restart", 100.0, "e1", "P1"),
        Probe("02 broker_restart", "broker_restart", 200.0, "e2", "P2"),
        Probe("03 poison", "poison", 300.0, "e3", "P3"),
    ]
    notes = [Note("n1", A, "P1", "s0", "mps-cr", "sms", "sent")]
    notes += [Note("n2", A, "P2", "s0", "mps-cr", "sms", "sent")]
    first = first_sms_per_child(notes, [("n1", 103.0), ("n1", 102.0), ("n2", 201.0), (None, 1.0)])
    assert first == {"P1": 102.0, "P2": 201.0}
    got = recovery(probes, {"e1": 101.0, "e2": 204.0}, first)
    assert got["01 broker_restart"] == {"applied_s": 1.0, "first_sms_s": 2.0}
    assert got["03 poison"] == {"applied_s": None, "first_sms_s": None}
    kinds = {p.label: p.kind for p in probes}
    assert per_kind(got, kinds) == {
        "broker_restart": {"applied_s": 4.0, "first_sms_s": 2.0},
        "poison": {"applied_s": None, "first_sms_s": None},
    }


def test_applied_late_counts_from_recovery_not_from_acceptance_inside_a_fault():
    pause = Window("01 postgres_pause", "postgres_pause", 100.0, 108.0)
    accepted = {"e1": 101.0, "e2": 50.0, "e3": 60.0}
    applied = {"e1": 117.0, "e2": 61.0, "e3": 70.0}
    assert applied_late(accepted, applied, [pause]) == 1  # e2: 11 s; e1: 9 s after the end


def test_a_provider_fault_does_not_excuse_a_late_step_but_an_infrastructure_fault_does():
    storm = Window("01 twilio_500", faults.TWILIO_500, 100.0, 160.0)
    pause = Window("02 postgres_pause", faults.POSTGRES_PAUSE, 200.0, 208.0)
    steps = [
        Step(A, "c1", "s0", "fired", 110.0, 113.0),  # the clock needs no Twilio: 3 s late
        Step(A, "c2", "s0", "fired", 203.0, 209.5),  # due in the pause: 1.5 s after its end
        Step(A, "c3", "s0", "fired", 50.0, 50.5),
    ]
    lates = step_lateness(steps, [storm, pause], DueTimes({}, {}))
    assert [(x.fault, x.late_s) for x in lates] == [
        ("01 twilio_500", 3.0),
        ("02 postgres_pause", 1.5),
        (None, 0.5),
    ]
    assert [x.step.child_id for x in decided_late(lates)] == ["c1"]
    assert decided_late(lates, bound_s=5.0) == []


def test_a_catch_up_after_a_risk_change_or_a_deploy_is_due_when_it_happened():
    raised = {"c1": 120.0}
    steps = [
        Step(A, "c1", "s1", "fired", 107.5, 121.0, policy="high"),  # due before the raise
        Step(A, "c2", "45m", "fired", 130.0, 141.0),  # inserted by a deploy that ended at 140
        Step(A, "c1", "s0", "fired", 100.0, 100.2, policy="medium"),  # before: as it was
    ]
    lates = step_lateness(steps, [], DueTimes({}, {}, raised, {"45m": 140.0}))
    assert [round(x.late_s, 2) for x in lates] == [1.0, 1.0, 0.2]


def test_sms_latency_runs_from_due_to_the_provider_and_is_split_by_the_mail_faults():
    smtp = Window("01 smtp_blackhole", faults.SMTP_BLACKHOLE, 100.0, 140.0)
    storm = Window("02 twilio_429", faults.TWILIO_429, 200.0, 260.0)
    steps = [
        Step(A, "c1", "s0", "fired", 110.0, 110.1),
        Step(B, "c2", "s0", "fired", 210.0, 210.1),
        Step(C, "c3", "s0", "fired", 20.0, 20.1),
    ]
    notes = [
        Note("n1", A, "c1", "s0", "mps-cr", "sms", "sent"),
        Note("n2", B, "c2", "s0", "mps-cr", "sms", "sent"),
        Note("n3", C, "c3", "s0", "lbh-duty", "sms", "sent"),
        Note("n4", C, "c3", "share", "lbi-duty", "sms", "sent", created_at=30.0),
        Note("n5", C, "c3", "s0", "lbh-duty", "email", "sent"),
    ]
    first = first_received([("n1", 113.5), ("n1", 111.0), ("n2", 290.0), ("n3", 20.4)])
    assert first == {"n1": 111.0, "n2": 290.0, "n3": 20.4}
    first["n4"] = 30.2
    rows = sms_latency(notes, steps, first, [smtp, storm], DueTimes({"c3": 20.0}, {}))
    assert [(r.notification_id, round(r.latency_s, 2), r.fault_kind) for r in rows] == [
        ("n1", 1.0, faults.SMTP_BLACKHOLE),
        ("n2", 80.0, faults.TWILIO_429),
        ("n3", 0.4, None),
        ("n4", 0.2, None),
    ]
    split = latency_split(rows)
    assert split["during_smtp_faults"] == {"n": 1, "p50_s": 1.0, "p95_s": 1.0}
    assert split["outside_faults"]["n"] == 2
    # Late in a Twilio storm is the storm's; late behind an email backlog is a failure.
    assert sms_late(rows) == []
    behind_mail = SmsLatency("n9", 4.0, faults.SMTP_REFUSE)
    assert sms_late([*rows, behind_mail]) == [behind_mail]


def test_the_default_full_schedule_holds_every_kind_and_the_storms_last_one_to_three_minutes():
    plan = faults.schedule(20261122, 900, PARTS)
    assert {f.kind for f in plan} == set(faults.KINDS)
    for f in plan:
        if f.kind in faults.STORM_KINDS:
            assert 60.0 <= f.duration <= 180.0
        assert (f.retry_after is not None) == (f.kind == faults.TWILIO_429_RETRY_AFTER)
        if f.retry_after is not None:
            assert 0 < f.retry_after <= 3600
    assert any("retry" in f.label for f in plan)


@pytest.mark.parametrize("seed", range(10))
def test_the_quick_schedule_has_a_short_twilio_outage_and_a_risk_change(seed):
    plan = faults.schedule(seed, 115, PARTS, faults.QUICK_KINDS, minute_s=5.0)
    storm = [f for f in plan if f.kind == faults.TWILIO_500]
    assert storm and all(5.0 <= f.duration <= 15.0 for f in storm)
    assert any(f.kind == faults.RISK_CHANGE for f in plan)
    assert not {f.kind for f in plan} & set(faults.SMTP_KINDS)


def test_an_unknown_fault_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="flood"):
        faults.schedule(1, 60, PARTS, ["flood"])


def test_the_chaos_config_is_valid_and_its_deploy_reorders_without_renaming_a_step():
    config, keys = chaos_config.chaos_config(0.5, 5.0)
    after = chaos_config.reordered(config, 0.5)
    for c in (config, after):
        GoldenHourConfig.model_validate(c)
    assert config["delivery"] == {"sms_failover_after": "10s", "unreachable_after": "25s"}
    before_keys = chaos_config.step_keys(config)["high"]
    after_keys = chaos_config.step_keys(after)["high"]
    stable = [k for k in before_keys if not k.startswith("s")]
    # Every step keeps its key; one is new; the positions moved, which is why keys are stable.
    assert set(stable) < set(after_keys)
    assert chaos_config.inserted_key(0.5) in after_keys
    assert chaos_config.inserted_key(0.5) not in before_keys
    assert before_keys["s0"]["notify"] != after_keys["s0"]["notify"]


def test_what_each_step_owes_comes_from_the_policy():
    config, _ = chaos_config.chaos_config(0.5, 60.0)
    owed = chaos_config.owed(config, chaos_config.reordered(config, 0.5))
    high = chaos_config.step_keys(config)["high"]
    first = next(k for k, raw in high.items() if raw.get("notify") == ["police.control_room"])
    assert owed["high", first] == {("mps-cr", "sms"), ("mps-cr", "email")}
    # The position keys mean the first deployed config's steps.
    assert owed["high", "s0"] == owed["high", first]
    assert owed["high", chaos_config.inserted_key(0.5)] == {("lbh-sw", "sms")}
    # Shares owe no contact message; medium owes its own contacts.
    assert not any(raw.get("share") and (("high", k) in owed) for k, raw in high.items())
    assert ("oak-mgr", "sms") not in owed["medium", "s0"]


def test_a_step_of_a_report_held_up_in_the_broker_is_due_when_the_report_was_applied():
    accepted = {"c1": 100.0, "c2": 200.0, "c3": 300.0}
    applied = {"e1": 104.0, "e2": 199.0}
    times = applied_times(accepted, {"c1": "e1", "c2": "e2"}, applied)
    assert times == {"c1": 104.0, "c2": 200.0, "c3": 300.0}
    step = Step(A, "c1", "s0", "fired", 100.0, 105.0)
    assert [x.late_s for x in step_lateness([step], [], DueTimes(times, {}))] == [1.0]
