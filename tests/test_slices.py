"""Per-slice metrics and drift ([slices]): a concept change in one slice is named, within a bounded
delay, by a drift record of that slice only; stationary slices stay quiet; the state survives a
snapshot; summary.json, the text summary, report.png and Prometheus carry the slices."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest

from driftline.cli.main import main
from driftline.learners.config import ConfigError, LearningConfig, SlicesConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.slices import OTHER, SliceMonitors, slice_value
from driftline.live.metrics import WorkerMetrics
from driftline.offline.backtest import run_backtest
from driftline.offline.sources import Source

KEY = b"s" * 32
REGIONS = ("north", "south", "west", "centre", "east")
WEIGHTS = (0.225, 0.225, 0.225, 0.225, 0.10)  # east: 10% of the traffic
CHANGE_AT = 6000
#: Global events from the change to the slice's drift record: the detector's alarm plus the
#: confirmation window (detectors.error.confirm_events = 400 of the slice's labels, at 10%:
#: ~4,000 events). Measured 4,162-4,690 on seeds 1-3.
MAX_DELAY = 6000


def region_stream(
    n: int,
    seed: int,
    change_at: int | None = CHANGE_AT,
    weights: tuple[float, ...] = WEIGHTS,
    flip: float = 1.0,
) -> Iterator[dict]:
    """y = x1 + x2 > 1 with 5% label noise; from ``change_at`` on, east's concept changes (each
    label flips with probability ``flip``: 1 reverses it, 0.5 makes it noise) while every other
    region keeps its own."""
    rng = random.Random(seed)
    for i in range(n):
        region = rng.choices(REGIONS, weights)[0]
        x1, x2 = rng.random(), rng.random()
        y = (x1 + x2 > 1.0) != (rng.random() < 0.05)
        if change_at is not None and i >= change_at and region == "east" and rng.random() < flip:
            y = not y
        x = {"x1": x1, "x2": x2, "region": region, "tier": rng.randrange(3)}
        yield {"id": i, "x": x, "y": y}


def config(by: tuple[str, ...] = ("region",), **sections: Any) -> LearningConfig:
    data: dict[str, Any] = {"slices": {"by": list(by)}, "snapshot": {"every_events": 0}}
    data.update(sections)
    return from_mapping(LearningConfig, data)


def run(engine: Engine, events: Iterator[dict], start: int = 0) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for i, event in enumerate(events, start):
        engine.process(event, i)
        alerts += engine.outputs.drain().alerts
    return alerts


def detections(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A signal's own detection: the record that opens an incident or joins one."""
    return [a for a in alerts if a["kind"] in ("drift", "update")]


# ---------------------------------------------------------------------- configuration


def test_slices_are_off_by_default() -> None:
    assert LearningConfig().slices == SlicesConfig()
    assert Engine(LearningConfig()).slices is None


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_values": 0}, "slices.max_values: must be >= 1, got 0"),
        ({"by": ["region", "region"]}, "slices.by: names a feature twice"),
        ({"by": [""]}, "slices.by: a feature name must not be empty"),
        ({"by": "region", "max_value": 3}, "slices.max_value: unknown setting; valid keys are"),
        ({"max_values": "many"}, "slices.max_values: must be an integer, got 'many'"),
    ],
)
def test_bad_slices_settings_fail_naming_the_key(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        from_mapping(LearningConfig, {"slices": section})


def test_slices_can_trigger_the_policy_action() -> None:
    assert from_mapping(LearningConfig, {"policy": {"act_on": ["slices"]}}).policy.act_on == (
        "slices",
    )


# ---------------------------------------------------------------------- values and bounds


def test_slice_values_are_strings_booleans_and_integers() -> None:
    assert [slice_value(v) for v in ("east", True, False, 3, 3.0, 2.5, None, [1])] == [
        "east", "true", "false", "3", "3", None, None, None,
    ]  # fmt: skip


def test_values_past_the_cap_share_other_and_are_counted() -> None:
    slices = SliceMonitors(("store",), max_values=3)
    for store in [1, 2, 1, 3, 4, 5, 4, 1]:
        slices.observe({"store": store})
    slices.observe({"other_feature": 1})
    table = slices.describe()["store"]
    assert {value: row["events"] for value, row in table.items()} == {
        "1": 3, OTHER: 3, "2": 1, "3": 1,
    }  # fmt: skip
    assert list(table)[:2] == ["1", OTHER]  # most events first
    assert slices.skipped == {"store": 1}


# ---------------------------------------------------------------------- drift per slice


@pytest.mark.parametrize("seed", [1, 2])
def test_a_concept_change_in_a_ten_percent_slice_is_named_by_its_drift_record(seed: int) -> None:
    engine = Engine(config(policy={"action": "none"}), partition=0)
    alerts = run(engine, region_stream(14_000, seed))
    sliced = [a for a in detections(alerts) if a.get("slice")]
    assert [a["slice"] for a in sliced] == [{"region": "east"}]
    (record,) = sliced
    assert record["signal"] == "slice:region=east"
    assert CHANGE_AT < record["index"] <= CHANGE_AT + MAX_DELAY
    assert record["effect"]["before"] < 0.15 < 0.5 < record["effect"]["after"]
    # Inside the incident rules: one incident, and the slice is among its signals.
    assert record["incident"] is not None
    assert {"region": "east"} in [s["slice"] for s in record["signals"]]
    table = engine.slices.describe()  # type: ignore[union-attr]
    assert table["region"]["east"]["alerts"] == 1
    assert table["region"]["east"]["metric"] < 0.6 < 0.9 < table["region"]["west"]["metric"]
    assert [value for value, row in table["region"].items() if row["alerts"]] == ["east"]


def test_a_slice_drift_is_an_incident_of_its_own_when_the_global_error_hardly_moves() -> None:
    # East carries 4% of the traffic and its labels become noise: the global error rises by
    # under 2 points (about 0.07 of its standard deviation, under detectors.error.min_effect).
    engine = Engine(config(policy={"action": "none"}), partition=0)
    stream = region_stream(18_000, seed=1, weights=(0.24, 0.24, 0.24, 0.24, 0.04), flip=0.5)
    found = detections(run(engine, stream))
    assert [(a["kind"], a["signal"], a["slice"]) for a in found] == [
        ("drift", "slice:region=east", {"region": "east"})
    ]
    assert found[0]["action"] == "none"  # slices are not in policy.act_on by default


def test_a_crossing_feature_sees_the_change_diluted() -> None:
    # Each tier holds a third of east's traffic: its error moves as little as the global one,
    # and any drift it reports is far smaller than east's, which names the cause.
    engine = Engine(config(("region", "tier"), policy={"action": "none"}), partition=0)
    sliced = [a for a in detections(run(engine, region_stream(14_000, 1))) if a.get("slice")]
    east = [a["effect"]["d"] for a in sliced if a["slice"] == {"region": "east"}]
    tiers = [a["effect"]["d"] for a in sliced if "tier" in a["slice"]]
    assert len(east) == 1 and {next(iter(a["slice"])) for a in sliced} <= {"region", "tier"}
    assert all(d < east[0] / 3 for d in tiers)


def test_the_slice_drift_joins_the_incident_of_the_global_error() -> None:
    # The global error moves too (east is 10% of it): one change, one incident with both.
    engine = Engine(config(policy={"action": "none"}), partition=0)
    alerts = detections(run(engine, region_stream(14_000, seed=1)))
    assert [a["kind"] for a in alerts] == ["drift", "update"]
    assert [a["signal"] for a in alerts] == ["error", "slice:region=east"]
    assert alerts[0]["incident"] == alerts[1]["incident"]


def test_a_stationary_stream_raises_no_slice_drift() -> None:
    engine = Engine(config(("region", "tier")), partition=0)
    alerts = run(engine, region_stream(14_000, seed=3, change_at=None))
    assert detections(alerts) == []
    table = engine.slices.describe()  # type: ignore[union-attr]
    assert sum(row["events"] for row in table["region"].values()) == 14_000
    assert sum(row["labelled"] for row in table["tier"].values()) == 14_000


def test_micro_batches_watch_the_slices_too() -> None:
    engine = Engine(config(policy={"action": "none"}, engine={"batch_size": 50}), partition=0)
    events = list(region_stream(14_000, seed=1))
    alerts: list[dict[str, Any]] = []
    for start in range(0, len(events), 50):
        engine.process_batch(events[start : start + 50], list(range(start, start + 50)))
        alerts += engine.outputs.drain().alerts
    assert [a["slice"] for a in detections(alerts) if a.get("slice")] == [{"region": "east"}]


def test_late_labels_find_their_slice() -> None:
    engine = Engine(config(policy={"action": "none"}), partition=0)
    for i, event in enumerate(region_stream(200, seed=1)):
        label = {"id": event["id"], "y": event.pop("y")}
        engine.process(event, i)
        engine.process_label(label, i)
    table = engine.slices.describe()  # type: ignore[union-attr]
    assert sum(row["labelled"] for row in table["region"].values()) == 200


# ---------------------------------------------------------------------- state


def test_snapshot_and_restore_keep_slice_state_and_what_comes_next() -> None:
    cfg = config(("region", "tier"), policy={"action": "none"})
    events = list(region_stream(14_000, seed=2))
    straight = Engine(cfg, partition=0, snapshot_key=KEY)
    whole = run(straight, iter(events))

    first = Engine(cfg, partition=0, snapshot_key=KEY)
    before = run(first, iter(events[:7000]))  # east's alarm waits for its confirmation here
    record = first.checkpoint()
    assert record is not None
    restored = Engine.restore(record["blob"], KEY, cfg, partition=0)
    assert restored.slices.describe() == first.slices.describe()  # type: ignore[union-attr]
    after = run(restored, iter(events[7000:]), start=7000)

    def key(a: dict[str, Any]) -> tuple:
        return (a["kind"], a["signal"], a["index"], a.get("slice"))

    assert [key(a) for a in before + after] == [key(a) for a in whole]
    assert any(a.get("slice") for a in after)
    assert restored.slices.describe() == straight.slices.describe()  # type: ignore[union-attr]


def test_a_restore_with_other_slices_starts_them_afresh() -> None:
    engine = Engine(config(("region", "tier")), partition=0, snapshot_key=KEY)
    run(engine, region_stream(500, seed=1))
    record = engine.checkpoint()
    assert record is not None
    other = from_mapping(LearningConfig, {"slices": {"by": ["tier"]}})
    restored = Engine.restore(record["blob"], KEY, other, partition=0)
    assert restored.slices is not None and restored.slices.describe() == {"tier": {}}
    off = Engine.restore(record["blob"], KEY, LearningConfig(), partition=0)
    assert off.slices is None


# ---------------------------------------------------------------------- outputs


def _source(n: int, seed: int) -> Source:
    return Source(name="regions", items=iter(list(region_stream(n, seed))), total=n)


def test_summary_json_has_the_slices(tmp_path: Path) -> None:
    summary = run_backtest(
        config(("region", "tier"), policy={"action": "none"}),
        _source(14_000, 1),
        out_dir=tmp_path,
        show_progress=False,
    )
    written = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert written["slices"] == summary["slices"]
    assert set(written["slices"]) == {"region", "tier"}
    assert set(written["slices"]["region"]) == set(REGIONS)
    for values in written["slices"].values():
        for row in values.values():
            assert set(row) == {"events", "labelled", "metric", "alerts"}
    assert written["slices"]["region"]["east"]["alerts"] == 1
    assert written["detection_scores"]["slices"]["alarms"] >= 1
    assert (tmp_path / "report.png").stat().st_size > 0


def test_cli_backtest_with_a_slices_config_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in region_stream(3000, seed=1)))
    cfg = tmp_path / "driftline.toml"
    cfg.write_text('[slices]\nby = ["region"]\nmax_values = 3\n')
    out = tmp_path / "out"
    assert main(["--config", str(cfg), "backtest", "--file", str(events), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "slices (accuracy over labels; drifts): region: " in text
    summary = orjson.loads((out / "summary.json").read_bytes())
    region = summary["slices"]["region"]
    assert len(region) == 4 and OTHER in region  # three values, the rest in __other__
    assert sum(row["events"] for row in region.values()) == 3000


def test_prometheus_has_slice_metrics_with_bounded_values() -> None:
    engine = Engine(config(slices={"by": ["region"], "max_values": 2}), partition=0)
    run(engine, region_stream(600, seed=1))
    text = generate_latest(WorkerMetrics(lambda: {0: engine}).registry).decode()
    lines = [line for line in text.splitlines() if line.startswith("driftline_slice_events_total")]
    values = sorted(line.split('value="')[1].split('"')[0] for line in lines)
    assert len(values) == 3 and OTHER in values
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == 600
    assert 'driftline_slice_metric{feature="region",metric="accuracy"' in text


def test_regression_slices_watch_the_scaled_absolute_error() -> None:
    rng = random.Random(5)
    engine = Engine(config(engine={"task": "regression"}), partition=0)
    for i in range(1500):
        region = rng.choice(REGIONS)
        x1 = rng.random()
        engine.process({"id": i, "x": {"x1": x1, "region": region}, "y": 3 * x1}, i)
    table = engine.slices.describe()  # type: ignore[union-attr]
    assert set(table["region"]) == set(REGIONS)
    assert all(
        row["metric"] is not None and row["metric"] < 1.0 for row in table["region"].values()
    )
    monitor = engine.slices.slices["region"]["east"].monitor  # type: ignore[union-attr]
    assert monitor.monitor.signal == "slice:region=east"  # the ScaledMonitor's inner monitor
