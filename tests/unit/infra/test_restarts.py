"""The supervisor's decisions, `now` in: when a part is started again, when `run` gives up,
and what it prints about readiness."""

from __future__ import annotations

import pytest

from goldenhour.dev.restarts import ReadyLine, RestartPolicy, Restarts

POLICY = RestartPolicy(base_s=0.5, cap_s=30.0, stable_s=30.0, max_failures=6, window_s=300.0)


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (20, 30.0)]
)
def test_the_delay_doubles_up_to_its_cap(attempt: int, delay: float) -> None:
    assert POLICY.delay(attempt, jitter=0.5) == pytest.approx(delay)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.999])
def test_jitter_stays_within_a_fifth_of_the_delay(jitter: float) -> None:
    assert 0.8 * 4.0 <= POLICY.delay(4, jitter) <= 1.2 * 4.0


def test_a_part_that_keeps_crashing_waits_longer_each_time_then_run_gives_up() -> None:
    restarts = Restarts(POLICY)
    now, delays = 0.0, []
    for _ in range(POLICY.max_failures - 1):
        delay = restarts.exited(ran_for_s=1.0, now=now, jitter=0.5)
        assert delay is not None
        delays.append(delay)
        now += delay + 1.0
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert restarts.exited(ran_for_s=1.0, now=now, jitter=0.5) is None


def test_a_part_that_ran_a_while_starts_its_backoff_again() -> None:
    restarts = Restarts(POLICY)
    for t in range(3):
        restarts.exited(ran_for_s=1.0, now=float(t), jitter=0.5)
    assert restarts.attempt == 3
    assert restarts.exited(ran_for_s=POLICY.stable_s, now=10.0, jitter=0.5) == pytest.approx(0.5)


def test_crashes_after_stable_runs_never_give_up() -> None:
    restarts = Restarts(POLICY)
    for n in range(50):  # one crash every minute, each after a minute up: bad luck, not a loop
        assert restarts.exited(ran_for_s=60.0, now=n * 60.0, jitter=0.5) is not None


def test_short_lived_crashes_spread_wider_than_the_window_never_give_up() -> None:
    restarts = Restarts(POLICY)
    for n in range(50):
        assert restarts.exited(ran_for_s=5.0, now=n * 61.0, jitter=0.5) is not None


def test_short_lived_crashes_within_the_window_give_up() -> None:
    restarts = Restarts(POLICY)
    outcomes = [restarts.exited(ran_for_s=10.0, now=n * 40.0, jitter=0.5) for n in range(6)]
    assert None not in outcomes[:-1] and outcomes[-1] is None


def test_ready_is_said_once_and_a_blip_says_nothing() -> None:
    line = ReadyLine("ready!", quiet_s=3.0)
    assert line.update(False, "starting", now=0.0) is None  # not ready yet: quiet
    assert line.update(True, "", now=1.0) == "ready!"
    assert line.update(True, "", now=1.5) is None
    assert line.update(False, "db down", now=2.0) is None
    assert line.update(True, "", now=4.0) is None  # back within quiet_s: nothing to say
    assert line.update(False, "db down", now=5.0) is None
    assert line.update(False, "db down", now=8.5) == "Golden Hour is not ready: db down"
    assert line.update(False, "db down", now=20.0) is None
    assert line.update(True, "", now=21.0) == "ready!"
