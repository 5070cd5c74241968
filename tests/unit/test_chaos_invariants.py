"""The chaos checks: each one reports the failure it exists to catch."""

from __future__ import annotations

from collections import Counter

from chaos.invariants import (
    Note,
    Probe,
    Step,
    Window,
    applied_late,
    first_sms_per_child,
    lateness,
    lost_events,
    mail_duplicates,
    never_sent,
    per_kind,
    recovery,
    sent_twice,
    unmatched_sms,
)

A = "00000000-0000-0000-0000-00000000000a"


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
    unsent = never_sent(notes, [], sms, Counter())
    assert [(u.key[2], u.key[3], u.reason) for u in unsent] == [
        ("mps-cr", "sms", "provider has none (row pending)"),
        ("mps-cr", "email", "provider has none (row sent)"),
    ]
    mail = Counter({notes[2].message_id: 1})
    assert [u.reason for u in never_sent(notes, [], Counter({"n1": 1, "n2": 1}), mail)] == []


def test_a_message_cancelled_by_a_stand_down_is_not_owed():
    assert never_sent([note("n1", status="cancelled")], [], Counter(), Counter()) == []


def test_a_fired_step_missing_a_message_it_owes_is_never_sent():
    fired = Step(A, "LBH-CX-0001", "s3", "fired", 10.0, 10.1)
    notes = [note("n1", "s3", "ukmpu", "sms")]
    unsent = never_sent(notes, [fired], Counter({"n1": 1}), Counter())
    assert [(u.key, u.reason) for u in unsent] == [
        ((A, "s3", "ukmpu", "email"), "fired, no message")
    ]
    skipped = Step(A, "LBH-CX-0001", "s1", "skipped", 10.0, 10.1)
    assert never_sent([], [skipped], Counter(), Counter()) == []


def test_two_sms_at_the_provider_for_one_step_and_contact_are_sent_twice():
    notes = [note("n1"), note("n2", contact="lbh-duty")]
    assert sent_twice(notes, Counter({"n1": 1, "n2": 1})) == []
    assert sent_twice(notes, Counter({"n1": 1, "n2": 2})) == [((A, "s0", "lbh-duty", "sms"), 2)]


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
    per_fault, steady = lateness(steps, [pause], {"c3": 60.0}, {"c4": 72.0})
    assert per_fault == {"01 broker_pause": 1.5}
    assert steady == 2.0


def test_a_step_due_soon_after_a_fault_belongs_to_it():
    kill = Window("01 kill_part(streams-1)", "kill_part", 100.0, 100.5)
    per_fault, steady = lateness([Step(A, "c1", "s1", "fired", 104.0, 109.0)], [kill], {}, {})
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
