"""The chaos run's result as a table for people and as JSON for machines."""

from __future__ import annotations

import json
from pathlib import Path


def failed(result: dict) -> list[str]:
    """The invariants that do not hold (any count above zero)."""
    return [name for name, count in result["invariants"].items() if count]


def _fmt(value: object) -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def table(result: dict) -> str:
    """The invariants, the figures and one line per fault, as aligned text."""
    lines = [
        f"chaos run: seed {result['seed']}, {result['children']} children,"
        f" {result['duration_s']:.0f} s of faults, settled: {result['settled']}"
        + ("" if result["settled"] else f" (still in progress: {result.get('at_settle_end')})"),
        "",
        f"{'invariant':<46} {'count':>6}  verdict",
    ]
    for name, count in result["invariants"].items():
        lines.append(f"{name:<46} {count:>6}  {'FAIL' if count else 'ok'}")
    for name, count in result.get("timeliness", {}).items():
        lines.append(f"{name:<46} {count:>6}  {'over' if count else 'ok'} (measured)")
    lines += ["", f"{'figure':<46} value"]
    for name, value in result["figures"].items():
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) and value:
            for sub, figures in value.items():
                text = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
                lines.append(f"{f'{name} {sub}':<46} {text}")
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
        elif isinstance(value, list):
            value = ", ".join(f"{v['part']} (rc {v['returncode']})" for v in value) or "none"
        lines.append(f"{name:<46} {_fmt(value)}")
    lines += [
        "",
        f"{'fault':<34} {'lasted':>7} {'worst late':>10} {'>2s':>4} {'applied':>8}"
        f" {'1st SMS':>8}  readyz",
    ]
    for f in result["faults"]:
        notes = [f["detail"]] if f.get("detail") else []
        if "takeover_s" in f:
            notes.append(
                f"survivor held all partitions in {_fmt(f['takeover_s'])} s,"
                f" group whole in {_fmt(f['group_whole_s'])} s,"
                f" {f['timers_due_in_gap']} timers due meanwhile,"
                f" worst {_fmt(f['gap_worst_late_s'])} s late"
            )
        if "relay_back_s" in f:
            notes.append(f"one relay active again after {_fmt(f['relay_back_s'])} s")
        detail = f"  ({'; '.join(notes)})" if notes else ""
        lines.append(
            f"{f['label'][:34]:<34} {_fmt(f['lasted_s']):>7} {_fmt(f['worst_step_lateness_s']):>10}"
            f" {f.get('steps_over_2s_late', 0):>4} {_fmt(f['applied_s']):>8}"
            f" {_fmt(f['first_sms_s']):>8}  {f['readyz']}{detail}"
        )
    lines += ["", f"{'recovery by kind (worst, s)':<34} {'applied':>8} {'1st SMS':>8}"]
    for kind, figures in sorted(result["recovery_by_kind"].items()):
        lines.append(
            f"{kind:<34} {_fmt(figures['applied_s']):>8} {_fmt(figures['first_sms_s']):>8}"
        )
    bad = failed(result)
    lines += ["", f"FAILED: {', '.join(bad)}" if bad else "every invariant holds"]
    return "\n".join(lines)


def write_json(result: dict, path: Path | None) -> str:
    """The result as JSON, also written to `path` when given."""
    text = json.dumps(result, indent=2, sort_keys=False, default=str)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text
