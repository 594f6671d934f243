"""The drift loop end to end, on seeded streams with pinned outcomes: confirmed drifts (no alarm on
stationary streams, one incident per change found within a bounded delay), incident records,
champion / challenger promotions by paired tests, snapshots that keep the challengers, micro-batches,
and the real Weather stream against its baselines."""

from __future__ import annotations

import csv
import functools
import itertools
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from river import linear_model, preprocessing

from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.slot import ModelSlot
from driftline.offline.backtest import run_backtest
from driftline.offline.datasets import get_dataset
from driftline.offline.sources import Source, open_source
from driftline.offline.summary_text import incident_lines

WEATHER = Path(__file__).resolve().parents[2] / "shared" / "data" / "weather.csv"
WEATHER_FEATURES = tuple(f"feat_{i}" for i in range(1, 9))
#: The record kinds the README documents for the alert output.
ALERT_KINDS = {"warning", "drift", "update", "recovered", "promoted"}
KEY = b"drift-loop-test-key-0123456789ab"
#: A true drift must open its incident within this many events.
MAX_DELAY = 1000
#: The Weather stream: at most one incident (drift record) per this many events.
WEATHER_EVENTS_PER_DRIFT = 5000


def make_config(**sections: Any) -> LearningConfig:
    return from_mapping(LearningConfig, sections, "")


#: Named configs, so that backtests can be cached by name.
CONFIGS: dict[str, LearningConfig] = {
    "default": LearningConfig(),
    "no-warnings": make_config(alerts={"warnings": False}),
    "tree-challenger": make_config(policy={"challengers": ["hoeffding_tree"]}),
    "batch-50": make_config(engine={"batch_size": 50}),
}


@functools.cache
def _events(name: str, limit: int | None = None) -> tuple[dict[str, Any], ...]:
    # Generated once per session: Agrawal's class balancing makes a full pass take seconds.
    return tuple(get_dataset(name).events(limit=limit))


def dataset_source(name: str, limit: int | None = None) -> Source:
    ds = get_dataset(name)
    events = _events(name, limit)
    drifts = [d for d in ds.true_drifts if d < len(events)]
    return Source(name, iter(events), len(events), drifts, ds.drift_width)


@functools.cache
def backtest(name: str, config: str = "default", limit: int | None = None) -> dict[str, Any]:
    """The summary of one run (cached: runs take seconds and several tests read the same one)."""
    return run_backtest(CONFIGS[config], dataset_source(name, limit), show_progress=False)


@functools.cache
def weather_backtest() -> dict[str, Any]:
    source = open_source(file=str(WEATHER), target="target")
    return run_backtest(LearningConfig(), source, show_progress=False)


@functools.cache
def weather_rows() -> tuple[tuple[dict[str, float], int], ...]:
    with open(WEATHER, newline="") as handle:
        return tuple(
            ({name: float(row[name]) for name in WEATHER_FEATURES}, int(row["target"]))
            for row in csv.DictReader(handle)
        )


needs_weather = pytest.mark.skipif(
    not WEATHER.is_file(), reason=f"the Weather stream is not at {WEATHER} (../shared/data)"
)


def records(summary: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in summary["alerts"] if a["kind"] == kind]


def drift_indices(summary: dict[str, Any]) -> list[int]:
    return [a["index"] for a in records(summary, "drift")]


# --------------------------------------------------------------------------- stationary streams


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hyperplane-stationary", "sea-stationary"])
def test_stationary_stream_raises_no_drift_on_any_signal(name: str) -> None:
    summary = backtest(name)
    assert summary["events"] == get_dataset(name).size
    kinds = summary["alerts_by_kind"]
    assert "drift" not in kinds and "update" not in kinds and "recovered" not in kinds
    assert summary["incidents"] == 0
    assert summary["detection_scores"]["incidents"]["false_alarms"] == 0
    for family in ("error", "prediction", "features", "guard"):
        assert summary["detection_scores"][family]["alarms"] == 0, family
    # Nothing changed: adapting served exactly what the same model without drift handling did.
    assert summary["metric"] == summary["baseline_metric"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hyperplane-stationary", "sea-stationary"])
def test_stationary_stream_promotes_no_challenger(name: str) -> None:
    summary = backtest(name)
    assert summary["promotions"] == 0
    assert "promoted" not in summary["alerts_by_kind"]
    assert summary["model_version"] == 1
    assert summary["models"][0]["role"] == "champion"
    assert summary["models"][0]["labels"] == summary["learned"]


# --------------------------------------------------------------------------- changes


@pytest.mark.slow
@pytest.mark.parametrize("name", ["agrawal-abrupt", "stagger-abrupt"])
def test_abrupt_change_is_one_incident_found_within_a_bounded_delay(name: str) -> None:
    summary = backtest(name)
    true_drifts = list(get_dataset(name).true_drifts)
    drifts = drift_indices(summary)
    for d in true_drifts:
        assert len([i for i in drifts if d <= i < d + MAX_DELAY]) == 1, (d, drifts)
    assert len(drifts) == len(true_drifts)  # at most one drift record per true drift
    assert summary["incidents"] == len(true_drifts)
    assert summary["detected"] == true_drifts
    assert summary["false_alarms"] == 0
    assert summary["detection_delay_mean"] < MAX_DELAY
    assert all(0 <= delay < MAX_DELAY for delay in summary["detection_delays"])


@pytest.mark.slow
def test_gradual_change_is_one_incident_per_change() -> None:
    ds = get_dataset("agrawal-gradual")
    summary = backtest("agrawal-gradual")
    drifts = drift_indices(summary)
    bounds = [*ds.true_drifts, math.inf]
    per_change = [len([i for i in drifts if lo <= i < hi]) for lo, hi in itertools.pairwise(bounds)]
    assert per_change == [1] * len(ds.true_drifts), drifts
    assert all(i >= ds.true_drifts[0] for i in drifts)
    # Each one is found before its transition (2000 events) is over by more than MAX_DELAY.
    assert summary["detected"] == list(ds.true_drifts)
    assert all(delay < ds.drift_width + MAX_DELAY for delay in summary["detection_delays"])
    assert summary["incidents"] == len(ds.true_drifts)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sea-abrupt", "sea-gradual"])
def test_changes_a_linear_model_absorbs_are_each_one_incident(name: str) -> None:
    # SEA's third change (threshold 9.5 -> 7) lifts the linear model's error for ~700 events
    # only: too little for the error's confirmation. Its predicted share of True moves for good
    # (0.58 -> 0.78), and the prediction monitor opens the incident.
    ds = get_dataset(name)
    summary = backtest(name)
    scores = summary["detection_scores"]["incidents"]
    assert scores["detected"] == list(ds.true_drifts)
    assert scores["false_alarms"] == 0
    assert summary["incidents"] == len(ds.true_drifts)
    if not ds.drift_width:
        assert scores["detection_delay_mean"] < MAX_DELAY
    opened_by = [a["signal"] for a in summary["alerts"] if a["kind"] == "drift"]
    assert "prediction:True" in opened_by
    # The error found what it could on its own; the incidents did not lose it.
    assert summary["detection_scores"]["error"]["detected"] != scores["detected"]


# --------------------------------------------------------------------------- the Weather stream


@needs_weather
@pytest.mark.slow
def test_weather_default_policy_is_at_least_as_accurate_as_no_adaptation_and_plain_river() -> None:
    summary = weather_backtest()
    rows = weather_rows()
    assert summary["events"] == len(rows)
    assert summary["task"] == "classification" and summary["metric_name"] == "accuracy"

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    correct = 0
    for x, y in rows:
        correct += model.predict_one(x) == y
        model.learn_one(x, y)
    plain = correct / len(rows)

    assert summary["metric"] >= summary["baseline_metric"]
    assert summary["metric"] >= plain
    assert 0.76 < plain < 0.78  # the README's hand-run figure: 0.768


@needs_weather
@pytest.mark.slow
def test_weather_raises_at_most_one_drift_per_5000_events() -> None:
    summary = weather_backtest()
    drifts = records(summary, "drift")
    assert len(drifts) <= summary["events"] / WEATHER_EVENTS_PER_DRIFT
    assert summary["incidents"] == len(drifts)
    assert set(summary["alerts_by_kind"]) <= ALERT_KINDS


@needs_weather
@pytest.mark.slow
def test_weather_no_change_metric_is_the_accuracy_of_repeating_the_previous_label() -> None:
    labels = [y for _, y in weather_rows()]
    repeats = sum(a == b for a, b in itertools.pairwise(labels))
    expected = repeats / (len(labels) - 1)
    summary = weather_backtest()
    assert summary["no_change_metric"] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- champion / challenger


def run_engine(
    config: LearningConfig, events: Any, engine: Engine | None = None, start: int = 0
) -> tuple[Engine, Any]:
    engine = engine if engine is not None else Engine(config, partition=0)
    for offset, event in enumerate(events, start):
        engine.process(event, offset)
    return engine, engine.outputs.drain()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "limit"), [("stagger-abrupt", None), ("agrawal-abrupt", 12_000)])
def test_abrupt_change_is_adapted_by_a_significant_promotion(name: str, limit: int | None) -> None:
    config = LearningConfig()
    events = _events(name, limit)
    true_drifts = [d for d in get_dataset(name).true_drifts if d < len(events)]
    _, out = run_engine(config, events)
    promoted = [a for a in out.alerts if a["kind"] == "promoted"]
    opened = {a["index"]: a["incident"] for a in out.alerts if a["kind"] == "drift"}
    assert all(a["index"] >= true_drifts[0] for a in promoted)  # none before any change
    for d in true_drifts:
        after = [a for a in promoted if d <= a["index"] < d + MAX_DELAY]
        assert after, f"no promotion within {MAX_DELAY} events of the change at {d}"
        # The promotion that adapts to a change belongs to that change's incident.
        incident = next(i for index, i in opened.items() if d <= index < d + MAX_DELAY)
        assert after[0]["incident"] == incident
    versions = {p["offset"]: p["model_version"] for p in out.predictions}
    assert len(versions) == len(events)
    for number, record in enumerate(promoted):
        evidence = record["evidence"]
        assert evidence["p_value"] < config.policy.promote_alpha
        assert evidence["challenger_loss"] < evidence["champion_loss"]
        assert record["model_version"] < record["new_model_version"]
        index = record["index"]
        # The promoting event was predicted by the old champion; every later one by the new.
        assert versions[index] == record["model_version"]
        end = promoted[number + 1]["index"] if number + 1 < len(promoted) else len(events) - 1
        assert {versions[i] for i in range(index + 1, end + 1)} == {record["new_model_version"]}
    assert out.predictions[-1]["model_version"] == promoted[-1]["new_model_version"]


def test_configured_challenger_learns_every_labelled_event_in_shadow() -> None:
    summary = backtest("hyperplane-stationary", "tree-challenger", limit=10_000)
    models = summary["models"]
    champion = [m for m in models if m["role"] == "champion"]
    configured = [m for m in models if m["role"] == "challenger" and m["origin"] == "configured"]
    assert len(champion) == 1 and len(configured) == 1
    assert configured[0]["name"] == "hoeffding_tree"
    assert champion[0]["name"] == "auto" and summary["promotions"] == 0
    assert configured[0]["labels"] == champion[0]["labels"] == summary["learned"] == 10_000
    assert configured[0]["metric"] is not None


def test_configured_challenger_stays_configured_after_it_wins_and_loses_back() -> None:
    # `policy.challengers` models "always learn in shadow": promoted and later demoted, the tree
    # comes back as a configured challenger (which never expires), while the config's own model,
    # once demoted, is a former champion (which expires after challenger_max_labels).
    slot = ModelSlot(CONFIGS["tree-challenger"], "classification", binary=True)
    (tree,) = slot.challengers
    result = {
        "test": "mcnemar_exact",
        "p_value": 0.0,
        "n": 1,
        "champion_loss": 0.5,
        "challenger_loss": 0.1,
    }
    slot._promote(tree, result, index=100)
    assert slot.champion_name == "hoeffding_tree"
    (former,) = slot.challengers
    assert (former.name, former.origin) == ("auto", "former champion")
    slot._promote(former, result, index=200)
    assert slot.champion_name == "auto" and slot.version == 3
    (back,) = slot.challengers
    assert (back.name, back.origin) == ("hoeffding_tree", "configured")
    for _ in range(CONFIGS["tree-challenger"].policy.challenger_max_labels + 1):
        back.learn({"x": 1.0}, True)
    slot._expire_challengers(10_000)
    assert [c.name for c in slot.challengers] == ["hoeffding_tree"]


# --------------------------------------------------------------------------- snapshots


@functools.cache
def _uninterrupted_with_challengers() -> tuple[Engine, Any]:
    config = CONFIGS["tree-challenger"]
    return run_engine(config, _events("agrawal-abrupt", 10_000))


@pytest.mark.slow
@pytest.mark.parametrize(
    "cut",
    [5150, 5500],
    ids=["fresh-challenger-learning", "incident-open-after-promotion"],
)
def test_restored_engine_keeps_its_challengers_and_continues_exactly_once(cut: int) -> None:
    config = CONFIGS["tree-challenger"]
    events = _events("agrawal-abrupt", 10_000)
    whole, expected_all = _uninterrupted_with_challengers()
    expected_predictions = [p for p in expected_all.predictions if p["offset"] >= cut]
    expected_alerts = [a for a in expected_all.alerts if a["index"] >= cut]

    first = Engine(config, partition=0, snapshot_key=KEY)
    run_engine(config, events[:cut], first)
    slot = first.slots[None]
    origins = sorted(c.origin for c in slot.challengers)
    blob = first.checkpoint()["blob"]

    restored = Engine.restore(blob, KEY, config, partition=0)
    assert restored.watermark == cut - 1
    assert restored.slots[None].describe_models() == slot.describe_models()
    assert sorted(c.origin for c in restored.slots[None].challengers) == origins
    assert "configured" in origins and len(origins) >= 2  # a fresh one or a former champion too
    assert restored.incidents.incident_id == first.incidents.incident_id
    # Redelivered events (at-least-once delivery after a restart) are not processed twice.
    _, redelivered = run_engine(config, events[cut - 100 : cut], restored, cut - 100)
    assert redelivered.predictions == [] and redelivered.alerts == []
    assert restored.counters["duplicates"] == 100

    _, got = run_engine(config, events[cut:], restored, cut)
    assert got.predictions == expected_predictions
    assert got.alerts == expected_alerts
    assert {a["kind"] for a in got.alerts} >= {"recovered", "update"}
    assert restored.slots[None].describe_models() == whole.slots[None].describe_models()
    ignore = ("snapshots", "duplicates")
    assert {k: v for k, v in restored.counters.items() if k not in ignore} == {
        k: v for k, v in whole.counters.items() if k not in ignore
    }


# --------------------------------------------------------------------------- incident records


INCIDENT_RUNS = ["agrawal-abrupt", "agrawal-gradual", "stagger-abrupt"]


@pytest.mark.slow
@pytest.mark.parametrize("name", INCIDENT_RUNS)
def test_incident_records_name_an_earlier_drift_and_list_their_signals(name: str) -> None:
    check_incident_records(backtest(name))


@needs_weather
@pytest.mark.slow
def test_weather_incident_records_name_an_earlier_drift_and_list_their_signals() -> None:
    check_incident_records(weather_backtest())


def check_incident_records(summary: dict[str, Any]) -> None:
    opened: set[str] = set()
    closed: set[str] = set()
    for record in summary["alerts"]:
        kind, incident = record["kind"], record["incident"]
        assert kind in ALERT_KINDS
        if kind == "drift":
            assert incident == f"p0-{record['index']}" and incident not in opened
            opened.add(incident)
        elif kind in ("update", "recovered"):
            assert incident in opened - closed, record
            if kind == "recovered":
                closed.add(incident)
        elif kind == "promoted" and incident is not None:
            assert incident in opened, record
        if kind in ("drift", "update", "recovered"):
            signals = record["signals"]
            assert signals, record
            assert signals[0]["signal"] == next(
                a["signal"] for a in summary["alerts"] if a["incident"] == incident
            )
            for signal in signals:
                assert signal["first_index"] <= signal["index"] <= record["index"], record
                assert isinstance(signal["effect"], float) and math.isfinite(signal["effect"])
            if kind != "recovered":
                assert signals[-1]["signal"] == record["signal"]
                assert signals[-1]["index"] == record["index"]
    assert len(opened) == summary["incidents"] == summary["alerts_by_kind"].get("drift", 0)


@pytest.mark.slow
def test_warnings_off_emits_no_warning_record_and_changes_nothing_else() -> None:
    quiet, loud = backtest("agrawal-abrupt", "no-warnings"), backtest("agrawal-abrupt")
    assert loud["alerts_by_kind"].get("warning", 0) > 0  # there were warnings to leave out
    assert "warning" not in quiet["alerts_by_kind"]
    assert quiet["alerts"] == [a for a in loud["alerts"] if a["kind"] != "warning"]
    # Warnings still start challengers: the same promotions, the same served predictions.
    assert quiet["promotions"] == loud["promotions"] > 0
    assert quiet["metric"] == loud["metric"]


# --------------------------------------------------------------------------- the alerts text


@pytest.mark.slow
@pytest.mark.parametrize("name", INCIDENT_RUNS)
def test_incident_lines_give_one_line_per_incident(name: str) -> None:
    summary = backtest(name)
    lines = incident_lines(summary["alerts"])
    drifts = records(summary, "drift")
    assert len(lines) == summary["incidents"] == len(drifts) > 0
    recovered = {a["incident"]: a["index"] for a in records(summary, "recovered")}
    promoted = Counter(a["incident"] for a in records(summary, "promoted"))
    for line, drift in zip(lines, drifts, strict=True):
        incident = drift["incident"]
        assert line.startswith(f"#{drift['index']}") and incident in line
        if incident in recovered:
            assert f"recovered at #{recovered[incident]}" in line
        else:
            assert " open " in line
        assert line.count("promoted ") == promoted[incident]
        last_signals = [a for a in summary["alerts"] if a["incident"] == incident][-1]["signals"]
        for signal in last_signals or drift["signals"]:
            assert signal["signal"] in line


def test_incident_lines_leave_out_warnings_outside_incidents() -> None:
    alerts = [
        {"kind": "warning", "index": 10, "incident": None, "signals": None},
        {
            "kind": "drift",
            "index": 500,
            "incident": "p0-500",
            "signals": [
                {"signal": "error", "effect": 0.8, "before": 0.1, "after": 0.35},
            ],
        },
        {"kind": "warning", "index": 600, "incident": "p0-500", "signals": None},
        {"kind": "promoted", "index": 700, "incident": "p0-500", "action": "promoted auto"},
        {"kind": "recovered", "index": 2700, "incident": "p0-500", "signals": None},
    ]
    lines = incident_lines(alerts)
    assert len(lines) == 1
    assert lines[0].startswith("#500") and "p0-500" in lines[0]
    assert "recovered at #2700" in lines[0]
    assert "error (d +0.80: 0.1 -> 0.35)" in lines[0] and "promoted auto" in lines[0]


@needs_weather
@pytest.mark.slow
def test_weather_incident_lines_give_one_line_per_incident() -> None:
    summary = weather_backtest()
    assert len(incident_lines(summary["alerts"])) == summary["incidents"]


# --------------------------------------------------------------------------- micro-batches


@pytest.mark.slow
def test_micro_batches_with_the_challenger_policy_still_open_incidents_and_promote() -> None:
    ds = get_dataset("agrawal-abrupt")
    summary = backtest("agrawal-abrupt", "batch-50")
    assert set(summary["alerts_by_kind"]) <= ALERT_KINDS
    assert summary["events"] == summary["learned"] + summary["guarded"] == ds.size
    assert summary["config"]["engine"]["batch_size"] == 50
    drifts = drift_indices(summary)
    for d in ds.true_drifts:
        assert len([i for i in drifts if d <= i < d + MAX_DELAY]) == 1, (d, drifts)
    assert len(drifts) == len(ds.true_drifts) == summary["incidents"]
    assert summary["promotions"] >= len(ds.true_drifts)
    check_incident_records(summary)


def test_a_challenger_that_wins_at_its_last_test_is_promoted_not_expired() -> None:
    # Found by the benchmark: expiry ran before the promotion and removed the winner first.
    config = make_config(
        policy={"promote_min_labels": 50, "promote_every": 50, "challenger_max_labels": 60}
    )
    slot = ModelSlot(config, "classification", binary=True)
    assert slot.start_challenger(index=0)
    (challenger,) = slot.challengers
    for _ in range(60):
        challenger.pairs.append((1.0, 0.0))  # the champion wrong, the challenger right
    challenger.since_check = challenger.shadow_labels = challenger.labels = 60
    evidence = slot.maybe_promote(index=60)
    assert evidence is not None and evidence["p_value"] < slot.per_test_alpha
    assert slot.version == 2 and slot.champion_origin == "fresh"
    assert [c.origin for c in slot.challengers] == ["former champion"]


def test_an_incident_closes_in_the_vectorised_micro_batch_path_too() -> None:
    # The micro-batch path (learn_many, no challenger) once skipped the quiet-incident check:
    # an incident opened there was never closed.
    rng = random.Random(5)
    events = [
        {"id": i, "x": {"a": rng.gauss(0.0 if i < 3000 else 3.0, 1.0)}, "y": rng.random() < 0.5}
        for i in range(9000)
    ]
    config = make_config(engine={"batch_size": 100}, policy={"action": "none"})
    engine = Engine(config, partition=0)
    for start in range(0, len(events), 100):
        engine.process_batch(events[start : start + 100], list(range(start, start + 100)))
    alerts = engine.outputs.drain().alerts
    opened = [a for a in alerts if a["kind"] == "drift"]
    closed = [a for a in alerts if a["kind"] == "recovered"]
    assert [a["signal"] for a in opened] == ["feature:a"]
    assert [a["incident"] for a in closed] == [opened[0]["incident"]]


@functools.cache
def _unlearnable_stream() -> tuple[dict[str, Any], ...]:
    # Three RBF classes a linear model cannot separate: its accuracy stays at the majority share
    # and SGD swings its predicted shares back and forth, on a stream that never changes.
    from river.datasets import synth

    gen = synth.RandomRBF(seed_model=2, seed_sample=2, n_classes=3, n_features=6)
    return tuple(
        {"id": i, "x": {str(k): float(v) for k, v in x.items()}, "y": int(y)}
        for i, (x, y) in enumerate(itertools.islice(gen, 30_000))
    )


def _unlearnable_backtest() -> dict[str, Any]:
    events = _unlearnable_stream()
    source = Source("rbf-unlearnable", iter(events), len(events))
    return run_backtest(LearningConfig(), source, show_progress=False)


@pytest.mark.slow
def test_prediction_drift_of_a_model_no_better_than_the_majority_class_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = _unlearnable_backtest()
    assert "drift" not in summary["alerts_by_kind"]
    assert summary["not_significant"]["prediction"] >= 1
    # The gate is what kept them out: without it the same run raises prediction drifts.
    monkeypatch.setattr(Engine, "_beats_majority_class", lambda self: True)
    ungated = _unlearnable_backtest()
    signals = [a["signal"] for a in ungated["alerts"] if a["kind"] == "drift"]
    assert signals and all(s.startswith("prediction:") for s in signals)
