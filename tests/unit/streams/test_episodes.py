"""A child's episodes from its absence and located events: never overlapping, and the same
whatever order the events arrive in or however often they are replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from goldenhour.streams.episodes import Episode, Happened, episodes

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
        kind=st.sampled_from(["absence", "located"]),
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
