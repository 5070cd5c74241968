"""The chaos report: a failed invariant is named, and the JSON round-trips."""

from __future__ import annotations

import json

from goldenhour.chaos import report

RESULT = {
    "seed": 1,
    "duration_s": 80.0,
    "children": 200,
    "settled": True,
    "invariants": {"accepted_never_applied_nor_dead_lettered": 0, "sms_sent_twice_for_one_step": 2},
    "figures": {
        "events_accepted": 1200,
        "notifications_by_status": {"sent": 3, "delivered": 4},
        "part_exits_not_caused_by_faults": [{"part": "dispatcher-1", "pid": 9, "returncode": 1}],
    },
    "faults": [
        {
            "label": "01 broker_pause",
            "kind": "broker_pause",
            "lasted_s": 15.0,
            "worst_step_lateness_s": 3.5,
            "applied_s": 2.0,
            "first_sms_s": None,
            "readyz": "503 seen",
        }
    ],
    "recovery_by_kind": {"broker_pause": {"applied_s": 2.0, "first_sms_s": None}},
}


def test_a_count_above_zero_fails_its_invariant_and_the_table_says_so():
    assert report.failed(RESULT) == ["sms_sent_twice_for_one_step"]
    text = report.table(RESULT)
    assert "FAILED: sms_sent_twice_for_one_step" in text
    assert "dispatcher-1 (rc 1)" in text and "delivered 4, sent 3" in text
    assert "01 broker_pause" in text and "never" in text  # a probe that never got its SMS


def test_every_invariant_at_zero_holds(tmp_path):
    ok = {**RESULT, "invariants": dict.fromkeys(RESULT["invariants"], 0)}
    assert report.failed(ok) == []
    assert report.table(ok).endswith("every invariant holds")
    path = tmp_path / "out" / "chaos.json"
    assert json.loads(report.write_json(ok, path)) == json.loads(path.read_text()) == ok
