"""The correlation id's rules: what a caller may send, where it is carried, and that it is one
per task (lanes of one intake batch, sends of one dispatcher run side by side)."""

from __future__ import annotations

import asyncio

import pytest

from goldenhour.infra import tracing


@pytest.mark.parametrize(
    "given", ["cr-2026-12-03-hackney-0042", "0b7f4a5e9c2d4e1f8a3b6c5d4e3f2a1b", "req:42.a_b"]
)
def test_a_plausible_id_is_taken_as_it_is(given: str):
    assert tracing.accept(given) == given


@pytest.mark.parametrize(
    "given", [None, "", "short", "a b", 'x" level="error', "é" * 10, "z" * 65, "a\nb" * 4]
)
def test_anything_else_gets_a_new_one(given: str | None):
    taken = tracing.accept(given)
    assert taken != given and len(taken) == 32


def test_bound_is_current_and_ends_with_its_block():
    assert tracing.current() is None
    with tracing.bound("cr-outer-000001"):
        with tracing.bound(None):  # nothing to bind: the outer id stays
            assert tracing.current() == "cr-outer-000001"
        with tracing.bound("cr-inner-000002"):
            assert tracing.current() == "cr-inner-000002"
        assert tracing.current() == "cr-outer-000001"
    assert tracing.current() is None


@pytest.mark.parametrize("as_mapping", [False, True])
def test_kafka_headers_carry_it_both_ways(as_mapping: bool):
    headers = tracing.kafka_headers("cr-2026-12-03-0042")
    assert tracing.from_kafka_headers(dict(headers) if as_mapping else headers) == (
        "cr-2026-12-03-0042"
    )
    assert tracing.kafka_headers(None) == []
    assert tracing.from_kafka_headers(None) is None
    assert tracing.from_kafka_headers([("other", b"x"), (tracing.KAFKA_HEADER, None)]) is None
    # A record written by something else, with an id that could mislead a log reader.
    assert tracing.from_kafka_headers([(tracing.KAFKA_HEADER, b'x" event="forged')]) is None


async def test_each_task_keeps_its_own():
    seen: dict[str, str | None] = {}

    async def lane(cid: str) -> None:
        with tracing.bound(cid):
            await asyncio.sleep(0)
            seen[cid] = tracing.current()

    await asyncio.gather(*(lane(f"cr-lane-{i:06d}") for i in range(5)))
    assert seen == {c: c for c in seen} and len(seen) == 5
    assert tracing.current() is None
