"""What a worker exposes on /metrics follows Prometheus' naming conventions
(https://prometheus.io/docs/practices/naming/), checked on a real scrape after a short run in
memory (tests/in_memory_run.py), not on the names the code declares: prometheus_client adds
``_total`` to a counter itself, and a hand list would drift from the code."""

from __future__ import annotations

import asyncio
import re

import pytest
from in_memory_run import exposition, families, run
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

#: Units Prometheus says not to use (base units only: seconds, bytes).
NOT_BASE_UNITS = re.compile(
    r"_(ms|msec|millis|milliseconds|us|micros|minutes|hours|kb|mb|kib|mib)(_|$)"
)


@pytest.fixture(scope="module")
def exposed() -> dict[str, str]:
    return {n: t for n, t in families(exposition()).items() if n.startswith("driftline_")}


def samples(name: str) -> list[Sample]:
    return [
        s
        for family in text_string_to_metric_families(exposition())
        for s in family.samples
        if s.name == name
    ]


def test_the_run_exposes_the_worker_and_the_engine_metrics(exposed: dict[str, str]) -> None:
    assert {"driftline_events_total", "driftline_processing_seconds"} <= set(exposed)
    assert len(exposed) >= 30


def test_counters_end_in_total_and_nothing_else_does(exposed: dict[str, str]) -> None:
    for name, kind in exposed.items():
        assert (kind == "counter") == name.endswith("_total"), f"{name} is a {kind}"


def test_durations_are_histograms_in_seconds(exposed: dict[str, str]) -> None:
    histograms = {name for name, kind in exposed.items() if kind == "histogram"}
    assert histograms == {"driftline_processing_seconds", "driftline_snapshot_seconds"}
    for name in exposed:
        assert not NOT_BASE_UNITS.search(name), f"{name}: use base units (seconds, bytes)"


def test_sizes_are_in_bytes(exposed: dict[str, str]) -> None:
    helps = dict(
        line.split(" ", 3)[2:] for line in exposition().splitlines() if line.startswith("# HELP ")
    )
    sized = {name for name in exposed if re.search(r"\bsize\b", helps[name], re.I)}
    assert sized == {"driftline_snapshot_bytes"}
    assert all(name.endswith("_bytes") for name in sized)


def test_alerts_are_counted_by_signal_and_kind() -> None:
    counted = samples("driftline_alerts_total")
    assert counted, "the run has a drift: its alerts must be counted"
    for sample in counted:
        assert set(sample.labels) == {"partition", "detector", "signal", "kind"}
    kinds = {s.labels["kind"] for s in counted}
    assert {"warning", "drift", "recovered"} <= kinds
    # The counts are the alerts of the run: one incident per partition (sea-abrupt at 5,000).
    drifts = {s.labels["partition"]: s.value for s in counted if s.labels["kind"] == "drift"}
    incidents = {s.labels["partition"]: s.value for s in samples("driftline_incidents_total")}
    assert drifts == incidents


def test_one_metric_of_waiting_labels(exposed: dict[str, str]) -> None:
    waiting = [n for n in exposed if re.search(r"pending|waiting|awaiting", n)]
    assert waiting == ["driftline_predictions_awaiting_label"]
    by_partition = {s.labels["partition"]: s.value for s in samples(waiting[0])}
    # Partition 1's last 50 labels never came; partition 0's labels are inline.
    assert by_partition == {"0": 0.0, "1": 50.0}


def test_a_partition_given_away_leaves_no_gauges_behind() -> None:
    # Its new owner reports its lag and snapshot size: a frozen copy here would be summed with
    # (or outrank) the live one on the dashboard.
    metrics = asyncio.run(run(keep=(0,)))
    text = generate_latest(metrics.registry).decode()
    gauges = {n for n, kind in families(text).items() if kind == "gauge"}
    partitions = {
        s.labels["partition"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in gauges and "partition" in s.labels
    }
    assert partitions == {"0"}
    # Without the rebalance, partition 1 is there.
    assert {s.labels["partition"] for s in samples("driftline_consumer_lag")} == {"0", "1"}
