"""The Prometheus alert rules and the Grafana dashboards: they parse, every expression is PromQL,
and every alert carries a severity, a summary and a runbook link to a heading that exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "infra" / "prometheus" / "goldenhour-rules.yml"
DASHBOARDS = sorted((ROOT / "infra" / "grafana").glob("*.json"))
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/goldenhour/goldenhour/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}
# Grafana's own variables, as Grafana substitutes them before the query reaches Prometheus.
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "24h"}


def rules() -> list[dict]:
    """Every rule of every group in the rules file."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel target, rows' panels included."""
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        stack = list(board["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def parse(expr: str) -> promql_parser.Expr:
    """The expression as Prometheus reads it, Grafana's range variables filled in."""
    for variable, value in GRAFANA_RANGES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
                    names.add(m.value)

    promql_parser.walk(parse(expr), pre_visit=visit)
    return names


def used_metric_names() -> set[str]:
    """Every metric name the rules and the dashboards use."""
    exprs = [r["expr"] for r in rules()] + [e for _, _, e in dashboard_exprs()]
    return set().union(*(metric_names(e) for e in exprs))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    """The anchors of the `###` headings of the runbook's "## Alerts" section."""
    section = RUNBOOK.read_text().split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    return {
        github_anchor(line.removeprefix("### "))
        for line in section.splitlines()
        if line.startswith("### ")
    }


def test_rules_file_has_groups_of_named_rules() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    assert doc["groups"], "no rule groups"
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names)), f"group names repeat: {names}"
    for group in doc["groups"]:
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, rule
            assert ("alert" in rule) != ("record" in rule), rule
    alerts = [r["alert"] for r in rules() if "alert" in r]
    assert len(alerts) == len(set(alerts)), f"alert names repeat: {alerts}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_each_rule_parses_and_links_its_runbook(rule: dict) -> None:
    parse(rule["expr"])
    if "for" in rule:
        promql_parser.parse_duration(rule["for"])
    assert rule["labels"]["severity"] in SEVERITIES
    notes = rule["annotations"]
    assert notes["summary"].strip() and notes["description"].strip()
    url = notes["runbook_url"]
    assert url.startswith(RUNBOOK_URL), url
    anchor = url.removeprefix(RUNBOOK_URL)
    assert anchor == github_anchor(rule["alert"]), f"{rule['alert']} links to #{anchor}"
    assert anchor in runbook_anchors(), f"no '### {rule['alert']}' under the runbook's Alerts"


def test_every_runbook_heading_has_its_rule() -> None:
    assert runbook_anchors() == {github_anchor(r["alert"]) for r in rules() if "alert" in r}


def test_the_alerts_the_operators_need_are_there() -> None:
    exprs = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    uses = {name: metric_names(expr) for name, expr in exprs.items()}
    assert "up" in uses["GoldenHourPartDown"]
    # Each part by the job name its ServiceMonitor gives it (jobLabel: the component).
    for part in ("api", "streams", "dispatcher"):
        assert (
            part in exprs["GoldenHourPartDown"] and f'job="{part}"' in exprs["GoldenHourPartAbsent"]
        ), part
    assert "goldenhour_outbox_relay_active" in uses["GoldenHourNoActiveRelay"]
    assert "goldenhour_consumer_lag_records" in uses["GoldenHourConsumerLagGrowing"]
    assert "goldenhour_timer_lateness_seconds_bucket" in uses["GoldenHourTimersLate"]
    assert " > 5" in exprs["GoldenHourTimersLate"]
    assert "goldenhour_dead_letters_total" in uses["GoldenHourDeadLetters"]
    assert 'channel=~"sms|voice"' in exprs["GoldenHourTwilioFailing"]
    assert 'channel="email"' in exprs["GoldenHourSmtpFailing"]
    past = "goldenhour_alerts_unacknowledged_past_last_step"
    assert past in uses["GoldenHourAlertUnacknowledged"]


# Counted by the one active replica; the others export 0 or nothing.
ONE_REPLICA_GAUGES = {
    "goldenhour_alerts_open",
    "goldenhour_alerts_unacknowledged_past_last_step",
    "goldenhour_outbox_rows_waiting",
    "goldenhour_outbox_relay_lag_seconds",
}


def first_aggregations(expr: str) -> dict[str, set[str]]:
    """For each metric, the aggregation operators applied directly to its selector."""
    found: dict[str, set[str]] = {}

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and isinstance(
            node.expr, promql_parser.VectorSelector
        ):
            found.setdefault(node.expr.name, set()).add(str(node.op))

    promql_parser.walk(parse(expr), pre_visit=visit)
    return found


def test_gauges_of_the_active_replica_are_taken_with_max() -> None:
    exprs = [r["expr"] for r in rules()] + [e for _, _, e in dashboard_exprs()]
    for expr in exprs:
        for name, ops in first_aggregations(expr).items():
            if name in ONE_REPLICA_GAUGES:
                assert ops == {"max"}, f"{name} aggregated with {ops} in {expr}"
        for name in metric_names(expr) & ONE_REPLICA_GAUGES:
            assert name in first_aggregations(expr), f"{name} not aggregated in {expr}"


def test_dashboards_are_grafana_json_with_a_prometheus_input() -> None:
    titles = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        titles.add(board["title"])
        assert board["schemaVersion"] >= 36
        assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
                assert panel["targets"], f"{path.name}: {panel['title']} has no query"
    assert titles == {"Golden Hour: the golden hour", "Golden Hour: the system"}


@pytest.mark.parametrize(
    ("board", "title", "expr"), list(dashboard_exprs()), ids=lambda v: str(v)[:40]
)
def test_each_dashboard_query_parses(board: str, title: str, expr: str) -> None:
    assert metric_names(expr), f"{board}: {title} selects no metric"


def test_the_golden_hour_dashboard_shows_the_three_histograms() -> None:
    board = ROOT / "infra" / "grafana" / "goldenhour-golden-hour.json"
    used = set().union(*(metric_names(e) for b, _, e in dashboard_exprs() if b == board.name))
    for span in ("notification", "delivery", "acknowledgement"):
        assert f"goldenhour_alert_first_{span}_seconds_bucket" in used
    assert "goldenhour_alerts_open" in used


def test_metric_names_reads_every_selector() -> None:
    expr = 'sum(rate(a_total[$__rate_interval])) / on() group_left max({__name__="b"}) > c'
    assert metric_names(expr) == {"a_total", "b", "c"}
