"""The benchmark's pure parts: percentiles, ratios to the floor, the table, the directory."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goldenhour.bench import directory, providers, report
from goldenhour.bench.stats import fmt, percentile, ratio, summary, table
from goldenhour.contracts.config import GoldenHourConfig, hash_api_key


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0], 50, 1.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # unsorted input
        (list(range(1, 101)), 99, 99.01),  # numpy's linear method
    ],
)
def test_percentile_interpolates_between_ranks(values, q, expected) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_summary_is_ordered_and_bounded(values) -> None:
    s = summary(values)
    assert min(values) - 0.01 <= s["p50"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["max"] == round(max(values), 2)


def test_summary_of_nothing_is_json_null_not_nan() -> None:
    s = summary([], ("p50", "p99", "max"))
    assert s == {"p50": None, "p99": None, "max": None}
    assert json.loads(json.dumps(s)) == s


@pytest.mark.parametrize(
    ("figure", "floor", "expected"),
    [(25.0, 2.5, 10.0), (1.0, 3.0, 0.3), (None, 1.0, None), (1.0, None, None), (1.0, 0.0, None)],
)
def test_ratio_to_the_floor(figure, floor, expected) -> None:
    assert ratio(figure, floor) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (math.nan, "-"),
        (12345.6, "12,346"),
        (0.305, "0.3"),
        (2.0, "2"),
        (20000, "20,000"),
    ],
)
def test_cells(value, text) -> None:
    assert fmt(value) == text


def test_table_aligns_columns() -> None:
    text = table(["figure", "ms"], [["p50", 1.5], ["p99 of many", 1234.0]])
    lines = text.splitlines()
    assert lines[0].startswith("figure") and set(lines[1]) <= {"-", " "}
    assert lines[2].endswith("1.5") and lines[3].endswith("1,234")
    assert len({len(line) for line in lines[1:]}) == 1  # right-aligned to one width


def test_floor_path_is_two_kafka_hops_and_two_commits() -> None:
    kafka = {"p50": 1.0, "p95": 2.0, "p99": 3.0, "max": 9.0}
    pg = {"p50": 0.25, "p95": 0.5, "p99": 1.0, "max": None}
    assert report.floor_path(kafka, pg) == {"p50": 2.5, "p95": 5.0, "p99": 8.0, "max": None}


def _run(**over) -> dict:
    r = {
        "mode": "quick",
        "wall_s": 100.0,
        "phase_s": {},
        "floor": {"kafka_ms": summary([1.0, 2.0]), "pg_ms": summary([0.3, 0.4])},
        "latency": {"latency_ms": summary([10.0, 20.0]), "api_ms": summary([2.0], ("p50", "p99"))},
        "timers": {
            "timer_lateness_ms": summary([5.0], ("p50", "p99", "max")),
            "timers_pending": 10,
        },
        "ingest": {"ingest_events_per_s": 1234.5, "ingest_api_ms": {"p50": 3.0, "p99": 9.0}},
        "recovery": {"recovery_s": {"first": 1.0, "all": 2.0}},
        "peak_rss_mb": {"api": 80.0},
        "cpu_s": {"api": 5.0},
        "directory": {},
    }
    r.update(over)
    return r


def test_results_carry_the_issues_keys() -> None:
    doc = report.results(_run())
    for key in (
        "latency_ms",
        "floor_roundtrip_ms",
        "api_ms",
        "timer_lateness_ms",
        "timers_pending",
        "timers_fired_once",
        "ingest_events_per_s",
        "recovery_s",
        "peak_rss_mb",
        "machine",
    ):
        assert key in doc
    assert set(doc["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert set(doc["api_ms"]) == {"p50", "p99"} and set(doc["recovery_s"]) == {"first", "all"}
    assert {"cpus", "python"} <= set(doc["machine"])
    json.dumps(doc)  # serialisable as it is


def test_render_survives_phases_not_run() -> None:
    text = report.render(report.results(_run(latency={}, timers={}, ingest={}, recovery={})))
    assert "report → first SMS p99" in text and "api" in text


def test_the_directory_is_valid_and_realistic() -> None:
    d = directory.build()
    config = GoldenHourConfig.model_validate(d.config)
    kinds = [o.kind.value for o in config.organisations]
    assert kinds.count("local_authority") == 33 and kinds.count("care_home") == 300
    phones = [c.phone for o in config.organisations for c in o.contacts]
    assert len(phones) == len(set(phones))  # an SMS reply leads to one contact
    for home in d.homes:
        la = config.org(d.home_authority[home])
        assert la is not None and config.org(la.police or "") is not None
        assert config.user_for_key_hash(hash_api_key(d.keys[d.staff(home)]))


def test_first_sms_and_duplicates_by_case() -> None:
    messages = [
        {"to": "+447700900001", "received_at": 10.0, "body": "ALERT. Case GH-2026-000001. x"},
        {"to": "+447700900002", "received_at": 9.0, "body": "ALERT. Case GH-2026-000001. y"},
        {"to": "+447700900001", "received_at": 11.0, "body": "concern: case TM-2026-000002 z"},
        {"to": "+447700900001", "received_at": 12.0, "body": "concern: case TM-2026-000002 z"},
        {"to": "+447700900001", "received_at": 1.0, "body": "old: Case GH-2026-000003"},
    ]
    assert providers.first_sms(messages, since=5.0) == {
        "GH-2026-000001": 9.0,
        "TM-2026-000002": 11.0,
    }
    counts = providers.sms_per_recipient(messages, "TM")
    assert counts == {("TM-2026-000002", "+447700900001"): 2}
