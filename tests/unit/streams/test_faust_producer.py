"""The streams worker's faust producer is made idempotent exactly when the broker serves it."""

from __future__ import annotations

from collections.abc import Iterator

import faust
import pytest

from goldenhour.streams.faust_producer import adjust_producer


@pytest.fixture
def app() -> Iterator[faust.App]:
    yield faust.App("t", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    adjust_producer(False)  # as every other worker of this process expects


async def test_the_producer_is_idempotent_where_the_broker_serves_it(app: faust.App) -> None:
    adjust_producer(True)
    made = app.producer._new_producer()
    try:
        assert made._txn_manager is not None, "made without the idempotent producer"
        assert app.producer._settings_extra() == {"acks": "all", "enable_idempotence": True}
    finally:
        await made.stop()


async def test_and_as_faust_makes_it_where_it_does_not(app: faust.App) -> None:
    adjust_producer(True)
    adjust_producer(False)  # a second worker in the process, on a broker without it
    made = app.producer._new_producer()
    try:
        assert made._txn_manager is None
    finally:
        await made.stop()
