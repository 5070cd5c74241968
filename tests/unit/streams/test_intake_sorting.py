"""Reading intake records and sorting poison, the retry backoff, and what readiness reports."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from goldenhour.contracts.events import IntakeRecord
from goldenhour.dev.london import event
from goldenhour.infra.backoff import delay
from goldenhour.streams.handlers import Poison, read_record
from goldenhour.streams.readiness import RETRY_UNREADY_AFTER_S, ClaimStreak, RetryBoard


def _record(**event_changes: object) -> dict:
    envelope = event("absence.reported", "LBH-2026-0042", {"last_seen_at": "2026-01-01T10:00:00Z"})
    envelope.update(event_changes)
    return {
        "event": envelope,
        "submitted_by": {"org_code": "OAK", "user_id": "oak-staff1"},
        "received_at": datetime.now(UTC).isoformat(),
    }


def test_a_good_record_reads():
    doc = _record()
    read = read_record(json.dumps(doc).encode())
    assert isinstance(read, IntakeRecord)
    assert str(read.event.event_id) == doc["event"]["event_id"]


# The deeply nested one makes json.loads raise RecursionError, which is not a ValueError.
@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"\xff\xfe", None, b"[" * 100_000 + b"]" * 100_000]
)
def test_what_does_not_parse_is_poison_of_reason_parse(raw):
    read = read_record(raw)
    assert isinstance(read, Poison) and read.reason == "parse"
    assert read.event_id is None and read.child_id is None


def test_an_unknown_schema_version_is_poison_with_what_could_be_read():
    doc = _record(schema_version=2)
    read = read_record(json.dumps(doc).encode())
    assert isinstance(read, Poison) and read.reason == "schema"
    assert read.event_id == uuid.UUID(doc["event"]["event_id"])
    assert read.child_id == "LBH-2026-0042"
    assert "2" in read.error


def test_a_record_failing_validation_is_poison_of_reason_validation():
    doc = _record(type="absence.reported", data={"last_seen_location": "no time given"})
    read = read_record(json.dumps(doc).encode())
    assert isinstance(read, Poison) and read.reason == "validation"
    assert "last_seen_at" in read.error


@pytest.mark.parametrize("doc", [[1, 2], "text", 42, {"event": "not an object"}])
def test_json_of_the_wrong_shape_is_poison_of_reason_validation(doc):
    read = read_record(json.dumps(doc).encode())
    assert isinstance(read, Poison) and read.reason == "validation"


def test_a_child_id_that_is_no_case_reference_is_not_kept():
    doc = _record(child_id="Amina Name\x00", schema_version=9)
    read = read_record(json.dumps(doc).encode())
    assert isinstance(read, Poison) and read.child_id is None


@pytest.mark.parametrize("failures", range(1, 12))
def test_backoff_grows_and_stays_under_its_cap(failures):
    rng = random.Random(failures)
    step = min(5.0, 0.2 * 2 ** (failures - 1))
    waits = [delay(failures, 0.2, 5.0, rng) for _ in range(50)]
    assert all(step / 2 <= w <= step for w in waits)
    assert len(set(waits)) > 1  # jittered, so replicas do not retry in step


def test_the_retry_board_reports_a_streak_once_and_only_after_a_moment():
    board = RetryBoard()
    assert board.enter("a", OSError("refused"), now=100.0) is True
    assert board.enter("b", OSError("refused"), now=100.1) is False
    assert board.enter("a", OSError("refused"), now=100.2) is False
    assert board.reason(now=100.0 + RETRY_UNREADY_AFTER_S / 2) is None
    reason = board.reason(now=100.0 + RETRY_UNREADY_AFTER_S + 1)
    assert reason and reason.startswith("database unreachable") and "2 record(s)" in reason
    assert board.leave("a") is False
    assert board.leave("never-entered") is False
    assert board.leave("b") is True
    assert board.reason(now=200.0) is None and board.count == 0


def test_the_claim_streak_starts_once_and_ends_on_success():
    streak = ClaimStreak()
    assert streak.failed(OSError("x")) is True
    assert streak.failed(OSError("y")) is False
    assert streak.failures == 2
    assert streak.succeeded() is True
    assert streak.succeeded() is False
    assert streak.reason() is None
