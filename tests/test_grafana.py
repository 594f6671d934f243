"""The Grafana of docker-compose.yml: its data source, its dashboard provider and the driftline
dashboard hold together, and every query asks for metrics a worker really exposes.

The metric names come from the ``/metrics`` text of a short worker run in memory
(tests/in_memory_run.py), not from a list written by hand: renaming a metric in the code breaks
this test until the dashboard follows. The YAML files keep to a small subset (``key: value``
lines) read with regular expressions: no YAML parser is a dependency (as in test_compose.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from in_memory_run import exposition, families
from prometheus_client.parser import text_string_to_metric_families
from test_compose import COMPOSE, PROMETHEUS, parse_compose

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "deploy" / "grafana"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "driftline.yml"
DASHBOARD = GRAFANA / "dashboards" / "driftline.json"

#: Series Prometheus adds itself for every target, and the labels it puts on every series.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}
#: PromQL words that are not metric names (aggregation modifiers, set operators).
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
KEYWORDS |= {"unless", "offset"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")


def yaml_value(text: str, key: str) -> str:
    (value,) = re.findall(rf"^\s*-?\s*{key}:\s*(.+?)\s*$", text, re.M)
    return value.strip("\"'")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = _MATCHERS.sub("", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors: [5m], [$__rate_interval]
    bare = _GROUPING.sub("", bare)
    names = set()
    for found in re.finditer(r"(?<![\w$.])[a-zA-Z_:][\w:]*", bare):
        if bare[found.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if found.group() not in KEYWORDS:
            names.add(found.group())
    return names


def label_names(expr: str, legend: str = "") -> set[str]:
    """Labels an expression matches on or groups by, and those its legend shows."""
    used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
    for matchers in _MATCHERS.findall(re.sub(r"\{\{[^}]*\}\}", "", expr)):
        used |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for _, grouped in _GROUPING.findall(expr):
        used |= {label.strip() for label in grouped.split(",") if label.strip()}
    return used


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def exposed() -> dict[str, set[str] | None]:
    """Every series name a worker exposes, with its label names (None: no sample in the run, so
    the labels are not known)."""
    text = exposition()
    series: dict[str, set[str] | None] = {}
    for name, kind in families(text).items():
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        for suffix in suffixes:
            series[name + suffix] = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            known = series.get(sample.name) or set()
            series[sample.name] = known | set(sample.labels)
    return series


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(where, expr, legend)`` of every panel target and annotation."""
    found = [
        (panel["title"], target["expr"], target.get("legendFormat", ""))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for note in dashboard["annotations"]["list"]:
        found.append((note["name"], note["expr"], note.get("textFormat", "")))
    return found


def panels_using(dashboard: dict[str, Any], metric: str, grouped_by: set[str]) -> list[str]:
    """Titles of the panels with a query of ``metric`` that groups or matches on ``grouped_by``."""
    return [
        panel["title"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if metric in metric_names(target["expr"]) and grouped_by <= label_names(target["expr"])
    ]


# --------------------------------------------------------------------------- the parsers


def test_metric_names_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, kind) (rate(driftline_processing_seconds_bucket"
        '{partition=~"$partition"}[$__rate_interval]))) / on (kind) group_left up{job="x"}'
    )
    assert metric_names(expr) == {"driftline_processing_seconds_bucket", "up"}
    assert label_names(expr, "p99 {{kind}}") == {"le", "kind", "partition", "job"}


# --------------------------------------------------------------------------- the dashboard


def test_dashboard_has_what_a_person_on_call_looks_at(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "driftline" and dashboard["title"] == "driftline"
    wanted = {
        "prequential metric per partition": ("driftline_metric", {"partition"}),
        "throughput": ("driftline_events_total", set()),
        "consumer lag": ("driftline_consumer_lag", set()),
        "alerts by signal and kind": ("driftline_alerts_total", {"signal", "kind"}),
        "dead letters by reason": ("driftline_dead_letters_total", {"reason"}),
        "model versions": ("driftline_model_version", set()),
        "promotions": ("driftline_promotions_total", set()),
        "snapshot size": ("driftline_snapshot_bytes", set()),
        "latency": ("driftline_processing_seconds_bucket", {"le"}),
        "waiting labels": ("driftline_predictions_awaiting_label", set()),
        "fallback predictions": ("driftline_predictions_total", {"source"}),
        "held partitions": ("driftline_held_partitions", set()),
    }
    missing = [what for what, (m, by) in wanted.items() if not panels_using(dashboard, m, by)]
    assert missing == []


def test_every_query_names_only_metrics_a_worker_exposes(
    dashboard: dict[str, Any], exposed: dict[str, set[str] | None]
) -> None:
    named = set()
    for where, expr, _ in queries(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = names - set(exposed) - PROMETHEUS_OWN
        assert not unknown, f"{where}: {sorted(unknown)} not exposed by a worker"
        named |= names
    for variable in dashboard["templating"]["list"]:
        metric, label = _LABEL_VALUES.match(variable["query"]["query"]).groups()  # type: ignore[union-attr]
        assert label in (exposed[metric] or set()), variable["name"]
    assert len(named & set(exposed)) >= 20  # most of what a worker exposes is on show


def test_every_label_a_query_uses_is_on_its_metrics(
    dashboard: dict[str, Any], exposed: dict[str, set[str] | None]
) -> None:
    checked = 0
    for where, expr, legend in queries(dashboard):
        labels = [exposed.get(name) for name in metric_names(expr) - PROMETHEUS_OWN]
        if not labels or any(known is None for known in labels):
            continue  # a metric with no sample in the run: its labels are not known
        available = set().union(*labels) | TARGET_LABELS  # type: ignore[arg-type]
        unknown = label_names(expr, legend) - available
        assert not unknown, f"{where}: labels {sorted(unknown)} not on {expr!r}"
        checked += 1
    assert checked >= 20


def test_the_job_the_dashboard_asks_for_is_the_one_prometheus_scrapes(
    dashboard: dict[str, Any],
) -> None:
    job = yaml_value(PROMETHEUS.read_text(), "job_name")
    jobs = {m for _, expr, _ in queries(dashboard) for m in re.findall(r'job="([^"]*)"', expr)}
    assert jobs == {job}


def test_units_follow_the_metric_names(dashboard: dict[str, Any]) -> None:
    for panel in dashboard["panels"]:
        names = {n for t in panel.get("targets", []) for n in metric_names(t["expr"])}
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if names and all(n.endswith("_bytes") for n in names):
            assert unit == "bytes", panel["title"]
        if names and all(n.startswith("driftline_") and "_seconds" in n for n in names):
            assert unit == "s", panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine


# --------------------------------------------------------------------------- provisioning


def test_every_panel_uses_the_provisioned_data_source(dashboard: dict[str, Any]) -> None:
    uid = yaml_value(DATASOURCE.read_text(), "uid")
    sources = [p["datasource"] for p in dashboard["panels"] if p["type"] != "row"]
    sources += [t["datasource"] for p in dashboard["panels"] for t in p.get("targets", [])]
    sources += [n["datasource"] for n in dashboard["annotations"]["list"]]
    sources += [v["datasource"] for v in dashboard["templating"]["list"]]
    assert sources and all(s == {"type": "prometheus", "uid": uid} for s in sources)


def test_data_source_is_the_compose_prometheus() -> None:
    text = DATASOURCE.read_text()
    assert yaml_value(text, "type") == "prometheus"
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", yaml_value(text, "url")).groups()  # type: ignore[union-attr]
    services = parse_compose(COMPOSE.read_text())
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    scrape = yaml_value(PROMETHEUS.read_text(), "scrape_interval")
    assert yaml_value(text, "timeInterval") == scrape  # $__rate_interval covers a scrape


def test_compose_mounts_the_provisioning_that_exists_read_only() -> None:
    grafana = parse_compose(COMPOSE.read_text())["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"]), "pin a version"
    assert grafana["depends_on"] == ["prometheus"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"  # anonymous, so never more than view
    mounts = {}
    for volume in grafana["volumes"]:
        host, inside, mode = volume.split(":")
        assert mode == "ro", volume
        assert (REPO / host).is_dir(), f"{host} does not exist"
        mounts[inside] = REPO / host
    assert mounts["/etc/grafana/provisioning/datasources"] == DATASOURCE.parent
    assert mounts["/etc/grafana/provisioning/dashboards"] == PROVIDER.parent
    dashboards = yaml_value(PROVIDER.read_text(), "path")
    assert mounts[dashboards] == DASHBOARD.parent
    assert yaml_value(PROVIDER.read_text(), "type") == "file"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/{DASHBOARD.name}"
    assert "3000:3000" in grafana["ports"]
