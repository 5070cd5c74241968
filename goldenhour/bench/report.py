"""The benchmark's outputs: results.json, one printed table, and latency.png."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

from goldenhour.bench.stats import fmt, ratio, table

TARGETS = {
    "latency_p50": 25,
    "latency_p99": 100,
    "timer_p99": 250,
    "timer_max": 1000,
    "ingest": 3000,
    "ingest_api_p99": 50,
    "recovery_all": 5,
    "rss": 300,
}


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def floor_path(kafka: dict, pg: dict) -> dict:
    """What report → first SMS costs at best after the 202: two Kafka hops (intake, then
    notification requests) and two Postgres transactions (the clock's, the dispatcher's claim)."""
    out: dict[str, float | None] = {}
    for key in ("p50", "p95", "p99", "max"):
        if kafka.get(key) is None or pg.get(key) is None:
            out[key] = None
        else:
            out[key] = round(2 * kafka[key] + 2 * pg[key], 2)
    return out


def results(r: dict) -> dict:
    """The results.json document: the issue's keys first, then the detail of each phase."""
    lat, tim, ing, rec = r["latency"], r["timers"], r["ingest"], r["recovery"]
    doc = {
        "latency_ms": lat.get("latency_ms"),
        "floor_roundtrip_ms": r["floor"]["kafka_ms"],
        "api_ms": lat.get("api_ms"),
        "timer_lateness_ms": tim.get("timer_lateness_ms"),
        "timers_pending": tim.get("timers_pending"),
        "timers_fired_once": tim.get("timers_fired_once"),
        "ingest_events_per_s": ing.get("ingest_events_per_s"),
        "recovery_s": rec.get("recovery_s"),
        "peak_rss_mb": r["peak_rss_mb"],
        "cpu_s": r["cpu_s"],
        "machine": {**machine(), "loadavg": r.get("loadavg")},
        "floor_pg_commit_ms": r["floor"]["pg_ms"],
        "floor_path_ms": floor_path(r["floor"]["kafka_ms"], r["floor"]["pg_ms"]),
        "mode": r["mode"],
        "wall_s": r["wall_s"],
        "phase_s": r["phase_s"],
        "phase_cpu_s": r.get("phase_cpu_s", {}),
        "latency": {k: v for k, v in lat.items() if k != "samples"},
        "latency_low": {k: v for k, v in r.get("latency_low", {}).items() if k != "samples"},
        "timers": {k: v for k, v in tim.items() if k != "series"},
        "ingest": {k: v for k, v in ing.items() if k != "ingest_series"},
        "recovery": rec,
        "directory": r["directory"],
    }
    return doc


def _load(m: dict, when: str) -> str:
    """The 1-minute load average (runnable processes) at the start or end of the run."""
    values = (m.get("loadavg") or {}).get(when) or []
    return fmt(values[0]) if values else "-"


def _p(d: dict | None, key: str) -> float | None:
    return (d or {}).get(key)


def render(doc: dict) -> str:
    """One table: each figure, its target, its floor and how many floors it is."""
    lat, api, tim = doc["latency_ms"] or {}, doc["api_ms"] or {}, doc["timer_lateness_ms"] or {}
    fk, fp, path = doc["floor_roundtrip_ms"], doc["floor_pg_commit_ms"], doc["floor_path_ms"]
    ing, rec = doc["ingest"], doc["recovery_s"] or {}
    ingest_floor = 1000 / fp["p50"] if fp.get("p50") else None
    pending = doc["timers_pending"]
    stage1 = doc["latency"].get("accepted_to_alert_opened_ms")
    stage2 = doc["latency"].get("alert_opened_to_sms_ms")
    low = doc.get("latency_low") or {}
    at = f" at {fmt(low.get('rate_per_s'))}/s"
    hi = f" at {fmt(doc['latency'].get('rate_per_s'))}/s"
    rows = [
        ["report → first SMS p50 (ms)" + at, _p(low.get("latency_ms"), "p50"), "", _p(path, "p50")],
        ["report → first SMS p99 (ms)" + at, _p(low.get("latency_ms"), "p99"), "", _p(path, "p99")],
        ["API 202 p50 (ms)" + at, _p(low.get("api_ms"), "p50"), "", _p(fp, "p50")],
        ["report → first SMS p50 (ms)" + hi, _p(lat, "p50"), "≤ 25", _p(path, "p50")],
        ["report → first SMS p95 (ms)" + hi, _p(lat, "p95"), "", _p(path, "p95")],
        ["report → first SMS p99 (ms)" + hi, _p(lat, "p99"), "≤ 100", _p(path, "p99")],
        ["report → first SMS max (ms)" + hi, _p(lat, "max"), "", _p(path, "max")],
        ["  of which 202 → alert opened p50 (ms)", _p(stage1, "p50"), "", None],
        ["  of which alert opened → SMS p50 (ms)", _p(stage2, "p50"), "", None],
        ["reports still without SMS at the end", doc["latency"].get("sms_missing"), "0", None],
        ["API 202 p50 (ms)" + hi, _p(api, "p50"), "", _p(fp, "p50")],
        ["API 202 p99 (ms)" + hi, _p(api, "p99"), "", _p(fp, "p99")],
        [f"timer lateness p50 (ms), {fmt(pending)} pending", _p(tim, "p50"), "", _p(fp, "p50")],
        ["timer lateness p99 (ms)", _p(tim, "p99"), "≤ 250", _p(fp, "p99")],
        ["timer lateness max (ms)", _p(tim, "max"), "≤ 1000", _p(fp, "max")],
        [
            "timers fired exactly once",
            doc["timers_fired_once"],
            fmt(doc["timers"].get("timers_due")),
            None,
        ],
        [
            "check-in ingest end to end (events/s)",
            doc["ingest_events_per_s"],
            "≥ 3000",
            ingest_floor,
        ],
        ["check-in API p99 (ms)", _p(ing.get("ingest_api_ms"), "p99"), "≤ 50", _p(fp, "p99")],
        ["recovery: first overdue step (s)", rec.get("first"), "", None],
        ["recovery: all overdue steps (s)", rec.get("all"), "≤ 5", None],
        ["floor: Kafka produce→consume p50 (ms)", _p(fk, "p50"), "", None],
        ["floor: Kafka produce→consume p99 (ms)", _p(fk, "p99"), "", None],
        ["floor: Postgres insert+commit p50 (ms)", _p(fp, "p50"), "", None],
        ["floor: Postgres insert+commit p99 (ms)", _p(fp, "p99"), "", None],
    ]
    for row in rows:
        figure, floor = row[1], row[3]
        row.append(ratio(floor, figure) if "events/s" in row[0] else ratio(figure, floor))
    head = ["figure", "measured", "target", "floor", "× floor"]
    procs = [
        [
            name,
            doc["peak_rss_mb"].get(name),
            "≤ 300" if name in ("api", "streams", "dispatcher") else "",
            doc["cpu_s"].get(name),
        ]
        for name in doc["peak_rss_mb"]
    ]
    per_phase = doc.get("phase_cpu_s") or {}
    names = list(doc["cpu_s"])
    phase_rows = [
        [phase, doc["phase_s"].get(phase), *(cpu.get(n) for n in names)]
        for phase, cpu in per_phase.items()
    ]
    m = doc["machine"]
    lines = [
        f"Golden Hour bench ({doc['mode']}), {m['cpus']} CPUs, Python {m['python']},"
        f" {doc['wall_s']:.0f} s, load average before/after"
        f" {_load(m, 'before')}/{_load(m, 'after')}",
        table(head, rows),
        "",
        table(["process", "peak RSS (MB)", "target", "CPU (s)"], procs),
        "",
        table(["CPU s by phase", "wall s", *names], phase_rows) if phase_rows else "",
        "",
        "floor of report → SMS = 2 Kafka round trips + 2 Postgres commits; of the API and the"
        " timers, one commit;",
        "of ingest, one connection's commits per second (× floor there is floor ÷ measured).",
    ]
    return "\n".join(lines)


def write(out: Path, doc: dict, r: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    plot(out / "latency.png", r)


def plot(path: Path, r: dict) -> None:
    """Report → first SMS (histogram), timer lateness against due time, ingest progress."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    samples = r["latency"].get("samples") or []
    ax = axes[0]
    if samples:
        ax.hist(samples, bins=60, color="#4c72b0")
        for key, style in (("p50", "--"), ("p99", ":")):
            value = r["latency"]["latency_ms"][key]
            ax.axvline(value, color="black", linestyle=style, label=f"{key} {value:.0f} ms")
        ax.legend()
    ax.set_title(f"report → first SMS at {fmt(r['latency'].get('rate_per_s'))}/s")
    ax.set_xlabel("ms after the API's 202")
    ax.set_ylabel("reports")
    series = r["timers"].get("series") or []
    ax = axes[1]
    if series:
        ax.scatter([s for s, _ in series], [lat for _, lat in series], s=1, alpha=0.4)
        ax.axhline(250, color="red", linestyle=":", label="target p99 250 ms")
        ax.legend()
    ax.set_title(f"timer lateness, {fmt(r['timers'].get('timers_pending'))} clocks")
    ax.set_xlabel("due (s after the first)")
    ax.set_ylabel("fired − due (ms)")
    ingest = r["ingest"].get("ingest_series") or []
    ax = axes[2]
    if len(ingest) > 1:
        rates = [
            (t1, (n1 - n0) / (t1 - t0))
            for (t0, n0), (t1, n1) in zip(ingest, ingest[1:], strict=False)
            if t1 > t0
        ]
        ax.plot([t for t, _ in rates], [v for _, v in rates])
    ax.set_title("check-ins applied by the streams worker")
    ax.set_xlabel("s since the first check-in")
    ax.set_ylabel("events/s")
    fig.suptitle(
        f"Golden Hour bench ({r['mode']}), {os.cpu_count()} CPUs, {sys.version.split()[0]}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
