"""A child's episodes from its absence and located events: never overlapping, and the same
whatever order the events arrive in or however often they are replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from goldenhour.reports.episodes import Custody, Episode, Happened, Holding, custody_at, episodes

T0 = datetime(2026, 4, 1, 21, 0, tzinfo=UTC)
H = timedelta(hours=1)


def absence(n: int, at: datetime, classification: str = "missing", child: str = "C1") -> Happened:
    return Happened(child, "absence", at, f"a{n}", classification)  # type: ignore[arg-type]


def located(n: int, at: datetime, child: str = "C1") -> Happened:
    return Happened(child, "located", at, f"l{n}")


def test_reports_while_open_are_one_episode_and_a_later_report_starts_another() -> None:
    found = episodes(
        [
            absence(1, T0),
            absence(2, T0 + H, "away"),  # reported again during the same absence
            located(1, T0 + 3 * H),
            absence(3, T0 + 30 * H, "away"),
        ]
    )
    assert found == [
        Episode("C1", T0, T0 + 3 * H, "missing", ("a1", "a2"), "l1"),
        Episode("C1", T0 + 30 * H, None, "away", ("a3",)),
    ]


def test_a_located_event_with_nothing_open_ends_nothing() -> None:
    found = episodes([located(1, T0), absence(1, T0 + H), located(2, T0 + 2 * H)])
    assert found == [Episode("C1", T0 + H, T0 + 2 * H, "missing", ("a1",), "l2")]
    again = episodes([absence(1, T0), located(1, T0 + H), located(2, T0 + 2 * H)])
    assert [e.end for e in again] == [T0 + H]


def test_seen_and_found_at_the_same_instant_is_an_episode() -> None:
    assert [e.end for e in episodes([located(1, T0), absence(1, T0)])] == [T0]


event_lists = st.lists(
    st.builds(
        Happened,
        child_id=st.sampled_from(["C1", "C2"]),
        kind=st.sampled_from(["absence", "located", "interview"]),
        at=st.integers(0, 200).map(lambda m: T0 + timedelta(minutes=10 * m)),
        event_id=st.uuids().map(str),
        classification=st.sampled_from(["missing", "away"]),
    ),
    max_size=40,
)


@given(event_lists, st.randoms(use_true_random=False))
def test_any_order_and_any_replay_give_the_same_episodes(events, rnd) -> None:
    shuffled = list(events) * 2
    rnd.shuffle(shuffled)
    assert episodes(shuffled) == episodes(events)


@given(event_lists)
def test_a_childs_episodes_never_overlap_and_only_the_last_is_open(events) -> None:
    found = episodes(events)
    for child in {e.child_id for e in found}:
        mine = [e for e in found if e.child_id == child]
        assert all(e.end is not None for e in mine[:-1])
        for before, after in zip(mine, mine[1:], strict=False):
            assert before.end is not None and before.end <= after.start
        assert all(e.end is None or e.start <= e.end for e in mine)


def interview(n: int, at: datetime, child: str = "C1") -> Happened:
    return Happened(child, "interview", at, f"i{n}")


def test_an_interview_belongs_to_the_latest_episode_ended_before_it_without_one() -> None:
    found = episodes(
        [
            absence(1, T0),
            located(1, T0 + H),
            interview(1, T0 + 2 * H),
            interview(2, T0 + 3 * H),  # a second interview for the same episode changes nothing
            absence(2, T0 + 10 * H),
            interview(3, T0 + 11 * H),  # while the next is open: none is held for it yet
            located(2, T0 + 12 * H),
        ]
    )
    assert [e.interview_at for e in found] == [T0 + 2 * H, None]


def test_an_interview_before_any_episode_ended_belongs_to_none() -> None:
    assert episodes([interview(1, T0), absence(1, T0 + H)])[0].interview_at is None


def custody(n: int, at: datetime, **kw: str) -> Custody:
    return Custody(at, f"c{n}", **kw)


def test_an_episode_belongs_to_who_held_the_child_when_it_started() -> None:
    changes = [
        custody(1, T0, authority="LBH"),
        custody(2, T0 + H, placement_id="P1", care_home="OAK"),
        custody(3, T0 + 5 * H, authority="LBI"),
        custody(4, T0 + 6 * H, placement_id="P1"),  # placement ended
        custody(5, T0 + 7 * H, placement_id="P2", care_home="ELM"),
    ]
    assert custody_at(changes, T0 - H) == Holding("LBH", None)  # before identification
    assert custody_at(changes, T0 + 2 * H) == Holding("LBH", "OAK")
    assert custody_at(changes, T0 + 5 * H) == Holding("LBI", "OAK")
    assert custody_at(changes, T0 + 6 * H) == Holding("LBI", None)
    assert custody_at(changes, T0 + 8 * H) == Holding("LBI", "ELM")


def test_the_end_of_a_placement_no_longer_current_leaves_the_current_one() -> None:
    changes = [
        custody(1, T0, authority="LBH"),
        custody(2, T0 + H, placement_id="P1", care_home="OAK"),
        custody(3, T0 + 2 * H, placement_id="P2", care_home="ELM"),
        custody(4, T0 + 3 * H, placement_id="P1"),
    ]
    assert custody_at(changes, T0 + 4 * H) == Holding("LBH", "ELM")
