"""The seeded fault schedule: reproducible, every kind in a long enough window, no overlap; and
the scale-out checks over what a run sampled: takeover of a stopped replica's partitions, the
timers due while it was down, one outbox relay at a time."""

from __future__ import annotations

import pytest

from goldenhour.chaos import faults, relay, takeover
from goldenhour.chaos.evidence import Step
from goldenhour.chaos.faults import Window, schedule, settled_at
from goldenhour.chaos.lateness import DueTimes

PARTS = ["api-1", "api-2", "streams-1", "streams-2", "dispatcher-1", "dispatcher-2"]


def test_same_seed_same_schedule_and_another_seed_another():
    assert schedule(7, 300, PARTS) == schedule(7, 300, PARTS)
    assert schedule(7, 300, PARTS) != schedule(8, 300, PARTS)


@pytest.mark.parametrize("seed", range(20))
def test_the_quick_window_holds_every_kind_once_at_least(seed):
    kinds = {f.kind for f in schedule(seed, 115, PARTS, faults.QUICK_KINDS, minute_s=5.0)}
    assert kinds == set(faults.QUICK_KINDS)


@pytest.mark.parametrize("seed", range(20))
def test_faults_never_overlap_and_end_with_their_gap_inside_the_window(seed):
    plan = schedule(seed, 300, PARTS)
    assert plan[0].at >= faults.LEAD_IN_S
    for before, after in zip(plan, plan[1:], strict=False):
        assert after.at >= settled_at(before)
    assert settled_at(plan[-1]) <= 300


def test_pauses_last_as_the_issue_says_and_kills_name_a_part():
    plan = schedule(3, 600, PARTS)
    for f in plan:
        if f.kind == faults.BROKER_PAUSE:
            assert f.duration == 15.0
        elif f.kind == faults.POSTGRES_PAUSE:
            assert f.duration == 8.0
        elif f.kind in faults.STORM_KINDS:
            assert 60.0 <= f.duration <= 180.0
        else:
            assert f.duration == faults.DURATIONS.get(f.kind, 0.0)
        assert (f.target in PARTS) == (f.kind in (faults.KILL_PART, faults.GRACEFUL_STOP))
        if f.kind == faults.GRACEFUL_STOP:
            assert f.target.startswith(("streams-", "dispatcher-"))
    assert any(f.kind == faults.KILL_PART for f in plan)
    assert any(f.kind == faults.GRACEFUL_STOP for f in plan)


def test_a_short_window_holds_what_fits_and_nothing_past_it():
    plan = schedule(1, 20, PARTS)
    assert plan and all(settled_at(f) <= 20 for f in plan)
    assert schedule(1, 3, PARTS) == []


def test_no_parts_is_refused():
    with pytest.raises(ValueError, match="at least one part"):
        schedule(1, 60, [])


WORKERS = PARTS[2:]


@pytest.mark.parametrize("seed", range(20))
def test_the_scale_out_run_stops_and_kills_a_replica_of_each_worker_part(seed):
    plan = schedule(seed, 100, WORKERS, faults.SCALE_OUT_KINDS, minute_s=5.0, cover_parts=True)
    assert plan == schedule(
        seed, 100, WORKERS, faults.SCALE_OUT_KINDS, minute_s=5.0, cover_parts=True
    )
    hit = {(f.kind, f.target.rsplit("-", 1)[0]) for f in plan}
    assert hit == {
        (kind, part) for kind in faults.SCALE_OUT_KINDS for part in ("streams", "dispatcher")
    }
    assert all(f.target in WORKERS for f in plan)
    stops = [f for f in plan if f.kind == faults.GRACEFUL_STOP]
    assert all(f.duration == faults.DURATIONS[faults.GRACEFUL_STOP] for f in stops)
    assert settled_at(plan[-1]) <= 100


def test_a_graceful_stop_never_hits_an_api_and_the_quick_run_has_none():
    plan = schedule(5, 900, PARTS, kinds=(faults.GRACEFUL_STOP,))
    assert plan and {f.target.rsplit("-", 1)[0] for f in plan} == {"streams", "dispatcher"}
    assert schedule(5, 900, ["api-1", "api-2"], kinds=(faults.GRACEFUL_STOP,)) == []
    assert faults.GRACEFUL_STOP in faults.KINDS
    assert faults.GRACEFUL_STOP not in faults.QUICK_KINDS


def _held(at: float, **replicas: list[int] | None) -> takeover.Held:
    shares = {
        name.replace("_", "-"): None if h is None else frozenset(h) for name, h in replicas.items()
    }
    return takeover.Held(at, "streams", shares)


STOP = Window("01 graceful_stop(streams-2)", faults.GRACEFUL_STOP, 100.0, 120.0, "", "streams-2")


def test_takeover_is_when_the_survivor_holds_every_partition_and_whole_when_both_do_again():
    samples = [
        _held(99.0, streams_1=[0, 1], streams_2=[2, 3]),
        _held(100.5, streams_1=[0, 1], streams_2=[2, 3]),  # the stopped one not yet gone
        _held(101.0, streams_1=[], streams_2=None),  # rebalancing
        _held(102.0, streams_1=[0, 1, 2], streams_2=None),  # not every partition yet
        _held(103.5, streams_1=[0, 1, 2, 3], streams_2=None),
        _held(121.0, streams_1=[0, 1], streams_2=[]),  # back, its share not yet given
        _held(122.0, streams_1=[0, 1], streams_2=[2, 3]),
    ]
    assert samples[0].covered() == 4 and samples[2].covered() == 0
    got = takeover.takeover(samples, "streams", STOP, partitions=4)
    assert got == takeover.Takeover(survivor_s=3.5, whole_s=22.0)
    # A kill whose replica was back before the survivor was given everything.
    kill = Window("02 kill_part(streams-2)", faults.KILL_PART, 100.0, 106.0, "", "streams-2")
    rejoined = [
        samples[0],
        _held(101.0, streams_1=[0, 1]),
        _held(104.0, streams_1=[0, 1], streams_2=[2, 3]),
    ]
    assert takeover.takeover(rejoined, "streams", kill, 4) == takeover.Takeover(None, 4.0)
    assert takeover.takeover(samples[:1], "streams", STOP, 4) == takeover.Takeover(None, None)
    # Another part's samples say nothing of this one.
    assert takeover.takeover(samples, "dispatcher", STOP, 4) == takeover.Takeover(None, None)
    assert takeover.part_of(kill) == "streams"
    api_kill = Window("03 kill_part(api-1)", faults.KILL_PART, 1.0, 2.0, "", "api-1")
    assert takeover.part_of(api_kill) is None


def test_the_partitions_a_replica_holds_are_read_from_its_lag_on_metrics():
    page = (
        "# HELP goldenhour_consumer_lag_records Records on the partition not yet handled\n"
        "# TYPE goldenhour_consumer_lag_records gauge\n"
        'goldenhour_consumer_lag_records{consumer="streams",partition="0",topic="gh.in"} 3.0\n'
        'goldenhour_consumer_lag_records{consumer="streams",partition="2",topic="gh.in"} 0.0\n'
        'goldenhour_consumer_lag_records{consumer="streams",partition="1",topic="gh.other"} 0.0\n'
    )
    assert takeover.held(page, "gh.in") == frozenset({0, 2})
    assert takeover.held("", "gh.intake.v1") == frozenset()


def _step(due: float, decided: float, key: str = "s1") -> Step:
    return Step("al-1", "LBH-CX-0001", key, "fired", due, decided)


def test_the_timers_due_while_a_replica_was_down_and_how_late_they_were_decided():
    steps = [_step(99.0, 99.1), _step(105.0, 105.4), _step(110.0, 113.0), _step(121.0, 121.1)]
    got = takeover.gap_timers(steps, STOP, DueTimes({}, {}))
    assert got == takeover.GapTimers(due=2, worst_late_s=3.0)
    assert takeover.gap_timers([], STOP, DueTimes({}, {})) == takeover.GapTimers(0, 0.0)


def test_two_relays_at_once_only_when_one_answer_is_bracketed_by_the_others():
    assert relay.Round(1.0, (1.0, 1.0, 1.0)).two_at_once
    # A handover between the answers: the first stepped down after the second took over.
    assert not relay.Round(1.0, (1.0, 1.0, 0.0)).two_at_once
    assert not relay.Round(1.0, (0.0, 1.0, 1.0)).two_at_once
    assert not relay.Round(1.0, (1.0, None, 1.0)).two_at_once
    assert relay.Round(1.0, (1.0, 0.0, 1.0)).active == 1
    assert relay.Round(1.0, (None, 0.0, None)).active is None
    rounds = [relay.Round(float(t), v) for t, v in enumerate([(1, 0, 1), (1, 1, 1), (0, 0, 0)])]
    assert relay.at_once(rounds) == [rounds[1]]
    assert relay.counts(rounds) == {"0": 1, "1": 1, "2": 1, "incomplete": 0}


def test_one_relay_active_again_after_a_fault_that_stopped_an_api_or_its_database():
    kill = Window("01 kill_part(api-1)", faults.KILL_PART, 10.0, 12.0, "", "api-1")
    restart = Window("02 postgres_restart", faults.POSTGRES_RESTART, 50.0, 52.0)
    pause = Window("03 broker_pause", faults.BROKER_PAUSE, 80.0, 95.0)
    rounds = [
        relay.Round(11.0, (None, 1.0, None)),
        relay.Round(13.0, (0.0, 1.0, 0.0)),
        relay.Round(53.0, (0.0, 0.0, 0.0)),
        relay.Round(90.0, (0.0, 0.0, 0.0)),
    ]
    assert relay.back_after(rounds, kill) == 1.0
    assert relay.not_back(rounds, [kill, restart, pause], within_s=30.0) == [restart.label]
    rounds.append(relay.Round(70.0, (1.0, 0.0, 1.0)))
    rounds.sort(key=lambda r: r.at)
    assert relay.not_back(rounds, [kill, restart, pause], within_s=30.0) == []
    assert relay.not_back(rounds, [restart], within_s=10.0) == [restart.label]


def test_the_relay_gauge_is_read_from_a_metrics_page():
    page = (
        "# HELP goldenhour_outbox_relay_active 1 when this process is the active relay\n"
        "# TYPE goldenhour_outbox_relay_active gauge\n"
        "goldenhour_outbox_relay_active 1.0\n"
    )
    assert relay.gauge(page) == 1.0
    assert relay.gauge("# TYPE other gauge\nother 1.0\n") is None
