"""The engine's prequential loop: order, task, dead letters, drift actions, fallback, guard, late
labels, duplicates, per-key models and micro-batches, on seeded streams with pinned outcomes."""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import UNCONFIRMED

from driftline.learners.config import ConfigError, LearningConfig, from_mapping
from driftline.learners.engine import Engine, encode_features

SELF = __name__  # this module, importable by name: its classes serve as `module:factory` models


def make_config(**sections: Any) -> LearningConfig:
    return from_mapping(LearningConfig, sections, "")


def sea_events(
    n: int,
    *,
    change_at: int | None = None,
    before: float = 10.0,
    after: float = 7.0,
    seed: int = 0,
    noise: float = 0.1,
) -> Iterator[dict[str, Any]]:
    """SEA-like stream: ``y = x1 + x2 > threshold`` with label noise; the threshold moves from
    ``before`` to ``after`` at ``change_at`` (an abrupt concept change)."""
    rng = random.Random(seed)
    for i in range(n):
        x1, x2 = rng.uniform(0, 10), rng.uniform(0, 10)
        threshold = before if change_at is None or i < change_at else after
        y = x1 + x2 > threshold
        if rng.random() < noise:
            y = not y
        yield {"id": i, "ts": 1_704_067_200_000 + 1000 * i, "x": {"x1": x1, "x2": x2}, "y": y}


def feed(engine: Engine, events: Any, start: int = 0) -> None:
    for offset, event in enumerate(events, start):
        engine.process(event, offset)


def error_alerts(alerts: list[dict[str, Any]]) -> list[tuple[int, str, str, int, int]]:
    return [
        (a["index"], a["kind"], a["action"], a["model_version"], a["new_model_version"])
        for a in alerts
        if a["signal"] == "error"
    ]


class RecordingModel:
    """Logs every call; predicts the label it saw last (a model whose learning is visible)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.last: Any = None

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        self.calls.append(("predict", x["i"]))
        return {} if self.last is None else {self.last: 1.0}

    def predict_one(self, x: dict[str, Any]) -> Any:
        return self.last

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.calls.append(("learn", x["i"], y))
        self.last = y


class SeenFeatures:
    """Remembers the inputs it learned from."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def predict_one(self, x: dict[str, Any]) -> Any:
        return None

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.seen.append(x)


class RaisingModel:
    """Learns fine, but every prediction raises."""

    def __init__(self) -> None:
        self.learned = 0

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        raise RuntimeError("model exploded")

    def predict_one(self, x: dict[str, Any]) -> Any:
        raise RuntimeError("model exploded")

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.learned += 1


class PredictOneOnly:
    """A classifier with learn_one/predict_one only: what the README says a custom model needs."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_one(self, x: dict[str, Any]) -> Any:
        return "yes"


# --------------------------------------------------------------------------- prequential order


def test_prediction_is_emitted_before_learning() -> None:
    engine = Engine(
        make_config(model={"name": f"{SELF}:RecordingModel"}, fallback={"warmup_labels": 0})
    )
    labels = [True, False, False]
    for i, y in enumerate(labels):
        engine.process({"id": i, "x": {"i": i}, "y": y}, i)
    # Each prediction is the label before its own: the model had not learned it yet.
    assert [(p["prediction"], p["source"]) for p in engine.outputs.drain().predictions] == [
        (None, "fallback"),  # the model knew nothing, nor did the fallback
        (True, "model"),
        (False, "model"),
    ]
    model = engine.slots[None].model
    assert model.calls == [
        ("predict", 0),
        ("learn", 0, True),
        ("predict", 1),
        ("learn", 1, False),
        ("predict", 2),
        ("learn", 2, False),
    ]


def test_first_labelled_event_is_predicted_by_the_fallback() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(3))
    predictions = engine.outputs.drain().predictions
    first, second = predictions[0], predictions[1]
    assert (first["source"], first["prediction"], first["model_version"]) == ("fallback", None, 1)
    # The fallback learned the first label after predicting it: it is the majority now.
    assert (second["source"], second["prediction"]) == ("fallback", next(sea_events(1))["y"])


def test_prediction_record_has_the_documented_shape() -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 0}), partition=3)
    engine.process({"id": "e-1", "key": "k", "x": {"x1": 1.0}, "y": True}, 41)
    engine.process({"id": "e-2", "key": "k", "x": {"x1": 2.0}, "y": False}, 42)
    record = engine.outputs.drain().predictions[1]
    assert set(record) == {
        "id",
        "key",
        "prediction",
        "confidence",
        "proba",
        "model_version",
        "source",
        "partition",
        "offset",
        "metric",
    }
    assert (record["id"], record["key"], record["partition"], record["offset"]) == (
        "e-2",
        "k",
        3,
        42,
    )
    assert record["source"] == "model"
    assert record["confidence"] == record["proba"][record["prediction"]]
    assert sum(record["proba"].values()) == pytest.approx(1.0)


def test_prediction_carries_the_running_metric_of_the_labels_scored_before_it() -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 0}, engine={"rolling_window": 2}))
    feed(engine, sea_events(50))
    # Without a label the event waits; its prediction shows the metric of the 50 before it.
    engine.process({"id": "late", "x": next(sea_events(1))["x"]}, 50)
    predictions = engine.outputs.drain().predictions
    assert predictions[0]["metric"] is None  # nothing scored yet
    first_scored = predictions[1]["metric"]
    assert first_scored["name"] == "accuracy" and first_scored["labels"] == 1
    assert first_scored["value"] in (0.0, 1.0)
    last = predictions[-1]["metric"]
    assert last["labels"] == 50
    assert last["value"] == pytest.approx(engine.metric.get())
    assert last["rolling"] == pytest.approx(engine.rolling.get())  # the last 2 labels
    assert last["rolling"] in (0.0, 0.5, 1.0)


# --------------------------------------------------------------------------- task


@pytest.mark.parametrize(
    ("label", "task", "reason", "metric", "binary"),
    [
        (True, "classification", "inferred from boolean labels", "accuracy", True),
        (3, "classification", "inferred from integer labels", "accuracy", False),
        ("cat", "classification", "inferred from string labels", "accuracy", False),
        (2.5, "regression", "inferred from numeric labels", "mae", False),
    ],
)
def test_task_is_inferred_from_the_first_label(
    label: Any, task: str, reason: str, metric: str, binary: bool
) -> None:
    engine = Engine(make_config())
    assert (engine.task, engine.task_reason) == (None, "not known until the first label")
    engine.process({"id": 0, "x": {"a": 1.0}}, 0)  # unlabelled: decides nothing
    assert engine.task is None
    engine.process({"id": 1, "x": {"a": 1.0}, "y": label}, 1)
    assert (engine.task, engine.task_reason, engine.metric_name) == (task, reason, metric)
    assert engine.binary is binary


def test_integer_labels_get_a_multiclass_model_and_booleans_a_binary_one() -> None:
    multi = Engine(make_config())
    multi.process({"id": 0, "x": {"a": 1.0}, "y": 2}, 0)
    assert type(multi.slots[None].model["OneVsRestClassifier"]).__name__ == "OneVsRestClassifier"
    binary = Engine(make_config())
    binary.process({"id": 0, "x": {"a": 1.0}, "y": True}, 0)
    assert type(binary.slots[None].model["LogisticRegression"]).__name__ == "LogisticRegression"


def test_configured_task_says_so() -> None:
    engine = Engine(make_config(engine={"task": "regression"}))
    assert (engine.task, engine.task_reason, engine.metric_name) == (
        "regression",
        "configured",
        "mae",
    )


@pytest.mark.parametrize(
    ("first", "wrong"),
    [(True, 2.5), (True, 1), (True, "yes"), (3, 2.5), ("cat", 0.5), (2.5, "cat"), (2.5, True)],
)
def test_label_of_the_wrong_type_after_inference_is_dead_lettered(first: Any, wrong: Any) -> None:
    engine = Engine(make_config())
    engine.process({"id": 0, "x": {"a": 1.0}, "y": first}, 0)
    raw = orjson.dumps({"id": 1, "x": {"a": 2.0}, "y": wrong})
    engine.process(raw, 1)
    out = engine.outputs.drain()
    assert [d["reason"] for d in out.dead_letters] == ["bad_label"]
    assert out.dead_letters[0]["original"] == raw.decode()
    assert [p["id"] for p in out.predictions] == [0]
    assert engine.counters["learned"] == 1 and engine.counters["invalid"] == 1
    assert engine.slots[None].fallback.n == 1  # not even the fallback saw it


# --------------------------------------------------------------------------- invalid events


def test_invalid_events_are_dead_lettered_counted_and_never_learned() -> None:
    engine = Engine(make_config(), partition=2)
    raws = [
        b'{"id": 0, "x": {"a": 1.0}, "y": true}',
        b"{not json",
        b'{"id": 2, "x": {"a": "b", "c": [1]}, "y": false}',
        b"\xff\xfe",
        b'{"id": 4, "x": {"a": 2.0}, "y": false}',
        b'{"id": 5, "y": true}',
    ]
    for offset, raw in enumerate(raws, 100):
        engine.process(raw, offset)
    out = engine.outputs.drain()
    assert [
        (d["reason"], d["position"], d["source"], d["partition"]) for d in out.dead_letters
    ] == [
        ("not_json", 101, "events", 2),
        ("bad_feature", 102, "events", 2),
        ("not_json", 103, "events", 2),
        ("missing_x", 105, "events", 2),
    ]
    assert out.dead_letters[0]["original"] == "{not json"
    assert out.dead_letters[2]["encoding"] == "hex" and out.dead_letters[2]["original"] == "fffe"
    assert [p["id"] for p in out.predictions] == [0, 4]  # the stream went on
    counters = engine.counters
    assert (counters["events"], counters["valid"], counters["invalid"], counters["learned"]) == (
        6,
        2,
        4,
        2,
    )
    assert engine.dead_letter_reasons == {"not_json": 2, "bad_feature": 1, "missing_x": 1}
    assert engine.watermark == 105  # invalid records are consumed too


def test_invalid_decoded_event_is_dead_lettered_as_json() -> None:
    engine = Engine(make_config())
    engine.process({"id": 1, "x": {"a": float("nan")}}, 0)
    (record,) = engine.outputs.drain().dead_letters
    assert record["reason"] == "non_finite"
    assert orjson.loads(record["original"]) == {"id": 1, "x": {"a": None}}


def test_invalid_decoded_event_with_an_unserialisable_value_is_dead_lettered() -> None:
    # BUG: Engine._reject re-serialises a dict with orjson.dumps, which raises TypeError on a
    # value JSON cannot hold (here a set): the "never a crash" contract breaks for dict input.
    engine = Engine(make_config())
    engine.process({"id": 1, "x": {"a": {1, 2}}}, 0)
    assert [d["reason"] for d in engine.outputs.drain().dead_letters] == ["bad_feature"]


def test_oversized_event_is_rejected_by_the_configured_limit() -> None:
    engine = Engine(make_config(engine={"max_event_bytes": 64}))
    engine.process(orjson.dumps({"id": 1, "x": {f"f{i}": i for i in range(20)}}), 0)
    assert [d["reason"] for d in engine.outputs.drain().dead_letters] == ["oversized"]


# --------------------------------------------------------------------------- features


def test_string_and_boolean_features_are_encoded_for_the_model() -> None:
    assert encode_features({"n": 2.0, "color": "red", "on": True, "off": False}) == {
        "n": 2.0,
        "color=red": 1,
        "on": 1,
        "off": 0,
    }
    numeric = {"a": 1.0, "b": 2}
    assert encode_features(numeric) is numeric
    engine = Engine(make_config(model={"name": f"{SELF}:SeenFeatures"}))
    engine.process(
        b'{"id": 1, "x": {"n": 2.0, "color": "red", "on": true, "gone": null}, "y": 1}', 0
    )
    assert engine.slots[None].model.seen == [{"n": 2.0, "color=red": 1, "on": 1}]


# --------------------------------------------------------------------------- drift actions

# These tests are about what a drift does, so the error detector's alarm is the drift
# (UNCONFIRMED: no confirmation window, effect size or false-alarm budget). On this stream its
# warning fires at 2571 and its drift at 2603; the incident closes (``recovered``) once
# ``alerts.close_after`` (2000) events pass with no new detection and no active alarm: at 4603.
CHANGE = 2500
N = 5000
CLOSE_AFTER = 2000


def _drift_run(
    action: str, error: dict[str, Any] | None = None, **sections: Any
) -> tuple[Engine, list[dict[str, Any]]]:
    engine = Engine(
        make_config(
            policy={"action": action},
            snapshot={"every_events": 500},
            # Only the error's alarm: a prediction drift joining the incident would keep it open.
            detectors={"error": {**UNCONFIRMED, **(error or {})}, "prediction": {"kind": "none"}},
            **sections,
        )
    )
    feed(engine, sea_events(N, change_at=CHANGE))
    return engine, engine.outputs.drain().alerts


def test_no_action_keeps_the_model() -> None:
    engine, alerts = _drift_run("none")
    records = error_alerts(alerts)
    assert records[:2] == [(2571, "warning", "none", 1, 1), (2603, "drift", "none", 1, 1)]
    # Later warnings are left out: with no confirmation window the monitor keeps its pre-drift
    # reference (STALE_REFERENCE in test_detectors.py) and warns again at 3691.
    assert [r for r in records if r[1] != "warning"] == [
        (2603, "drift", "none", 1, 1),
        (2603 + CLOSE_AFTER, "recovered", "none", 1, 1),
    ]
    drift, recovered = (a for a in alerts if a["kind"] in ("drift", "recovered"))
    assert drift["incident"] == recovered["incident"] == "p-2603"
    assert [s["signal"] for s in drift["signals"]] == ["error"]
    assert recovered["evidence"]["last_detection_at"] == 2603
    assert engine.slots[None].version == 1
    assert engine.slots[None].labels_learned == N


def test_reset_starts_a_fresh_model() -> None:
    engine, alerts = _drift_run("reset")
    assert error_alerts(alerts) == [
        (2571, "warning", "none", 1, 1),
        (2603, "drift", "reset", 1, 2),
        (2603 + CLOSE_AFTER, "recovered", "none", 2, 2),
    ]
    slot = engine.slots[None]
    assert slot.version == 2
    assert slot.labels_learned == N - 1 - 2603  # counting restarted after the drift's own label
    assert engine.counters["learned"] == N


def test_background_swaps_in_the_model_started_at_the_warning() -> None:
    engine = Engine(make_config(policy={"action": "background"}, detectors={"error": UNCONFIRMED}))
    slot = None
    started = None
    swapped_at = None
    for i, event in enumerate(sea_events(N, change_at=CHANGE)):
        engine.process(event, i)
        slot = engine.slots[None]
        for alert in engine.outputs.drain().alerts:
            if alert["signal"] != "error":
                continue
            if alert["kind"] == "warning":
                assert alert["action"] == "background model started"
                started = slot.background
            elif alert["kind"] == "drift":
                assert (alert["action"], alert["model_version"], alert["new_model_version"]) == (
                    "background",
                    1,
                    2,
                )
                swapped_at = alert["index"]
                assert started is not None and slot.model is started
                assert slot.background is None
                # It learned every label since the warning (at 2571), the drift's own included.
                assert slot.labels_learned == 2603 - 2571
    assert swapped_at == 2603
    assert slot is not None and slot.version == 2


def test_background_without_a_warning_resets_and_says_so() -> None:
    engine, alerts = _drift_run("background", error={"warning": False})
    assert error_alerts(alerts)[0] == (
        2603,
        "drift",
        "reset (background: nothing to use yet)",
        1,
        2,
    )
    assert engine.slots[None].labels_learned == N - 1 - 2603


def test_rollback_returns_to_the_last_snapshot_model() -> None:
    engine = Engine(
        make_config(
            policy={"action": "rollback"},
            snapshot={"every_events": 500},
            detectors={"error": UNCONFIRMED},
        )
    )
    events = list(sea_events(N, change_at=CHANGE))
    saved = None
    rolled_back_at = None
    drifting_model = None
    for i, event in enumerate(events):
        if i > CHANGE:
            drifting_model = copy.deepcopy(engine.slots[None].model)  # before this event
        engine.process(event, i)
        slot = engine.slots[None]
        if engine.index % 500 == 0 and not slot.alarm_active:
            saved = copy.deepcopy(slot.model)  # what the snapshot just marked as good
        drifts = [a for a in engine.outputs.drain().alerts if a["kind"] == "drift"]
        if drifts and drifts[0]["signal"] == "error":
            assert (drifts[0]["action"], drifts[0]["new_model_version"]) == ("rollback", 2)
            rolled_back_at = i
            break
    assert rolled_back_at == 2603
    assert saved is not None
    slot = engine.slots[None]
    assert slot.last_good_version == 1 and slot.version == 2
    probes = [encode_features(e["x"]) for e in events[:50]]
    saved_probas = [saved.predict_proba_one(x) for x in probes]
    assert [slot.model.predict_proba_one(x) for x in probes] == saved_probas
    assert drifting_model is not None  # the model it replaced had moved on since the snapshot
    assert [drifting_model.predict_proba_one(x) for x in probes] != saved_probas
    # A rolled-back model was warm when saved: the very next prediction is its own.
    nxt = events[rolled_back_at + 1]
    engine.process(nxt, rolled_back_at + 1)
    record = engine.outputs.drain().predictions[0]
    assert record["source"] == "model" and record["model_version"] == 2
    assert record["proba"] == saved.predict_proba_one(encode_features(nxt["x"]))


def test_rollback_without_a_snapshot_resets() -> None:
    engine = Engine(make_config(policy={"action": "rollback"}, snapshot={"every_events": 0}))
    feed(engine, sea_events(N, change_at=CHANGE))
    drift = next(a for a in engine.outputs.drain().alerts if a["kind"] == "drift")
    assert drift["action"] == "reset (rollback: nothing to use yet)"


def test_drift_of_a_signal_not_acted_on_changes_nothing() -> None:
    engine = Engine(
        make_config(
            policy={"action": "reset", "act_on": ["features"]},
            detectors={"error": {**UNCONFIRMED, "warning": False}},
        )
    )
    feed(engine, sea_events(N, change_at=CHANGE))
    drift = next(a for a in engine.outputs.drain().alerts if a["kind"] == "drift")
    assert (drift["signal"], drift["action"], drift["new_model_version"]) == ("error", "none", 1)


# --------------------------------------------------------------------------- fallback


def test_cold_model_is_replaced_by_the_fallback_for_warmup_labels() -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 20}))
    feed(engine, sea_events(100))
    sources = [p["source"] for p in engine.outputs.drain().predictions]
    assert sources == ["fallback"] * 20 + ["model"] * 80
    assert (engine.counters["predicted_by_fallback"], engine.counters["predicted_by_model"]) == (
        20,
        80,
    )


def test_fallback_none_shows_the_cold_model() -> None:
    engine = Engine(make_config(fallback={"kind": "none", "warmup_labels": 20}))
    feed(engine, sea_events(30))
    assert {p["source"] for p in engine.outputs.drain().predictions} == {"model"}


def test_model_that_raises_is_replaced_by_the_fallback_and_still_learns() -> None:
    engine = Engine(
        make_config(model={"name": f"{SELF}:RaisingModel"}, fallback={"warmup_labels": 0})
    )
    events = list(sea_events(200))
    feed(engine, events)
    predictions = engine.outputs.drain().predictions
    assert {p["source"] for p in predictions} == {"fallback"}
    slot = engine.slots[None]
    assert slot.predict_errors == 200
    assert slot.model.learned == 200 and engine.counters["learned"] == 200
    majority = sum(e["y"] for e in events[:199]) > 99
    assert predictions[-1]["prediction"] is majority


def test_custom_classifier_with_predict_one_only_is_used() -> None:
    # BUG: ModelSlot.predict_model calls predict_proba_one for every classifier; a custom model
    # that (as the README allows) has only learn_one/predict_one raises AttributeError there,
    # which is swallowed: every prediction silently comes from the fallback, forever.
    engine = Engine(
        make_config(model={"name": f"{SELF}:PredictOneOnly"}, fallback={"warmup_labels": 0})
    )
    for i in range(5):
        engine.process({"id": i, "x": {"a": 1.0}, "y": "no"}, i)
    predictions = engine.outputs.drain().predictions
    assert engine.slots[None].predict_errors == 0
    assert [(p["source"], p["prediction"]) for p in predictions[1:]] == [("model", "yes")] * 4


def test_untrusted_model_under_alarm_gives_way_to_the_fallback() -> None:
    engine = Engine(
        make_config(
            policy={"action": "none", "trust_model_during_alarm": False},
            detectors={"error": UNCONFIRMED},
        )
    )
    feed(engine, sea_events(N, change_at=CHANGE))
    out = engine.outputs.drain()
    assert [r for r in error_alerts(out.alerts) if r[1] == "drift"] == [
        (2603, "drift", "none", 1, 1)
    ]
    sources = [p["source"] for p in out.predictions]
    # The drift is raised while learning event 2603; its alarm ends (recovery_events, 1000
    # quiet labels later) while learning event 3603. The incident closes later (not an alarm).
    assert sources[50:2604] == ["model"] * (2604 - 50)
    assert sources[2604:3604] == ["fallback"] * 1000
    assert sources[3604:] == ["model"] * (N - 3604)


def test_snapshot_fallback_predicts_with_the_last_good_model() -> None:
    engine = Engine(
        make_config(
            policy={"action": "none", "trust_model_during_alarm": False},
            detectors={"error": UNCONFIRMED},
            fallback={"kind": "snapshot"},
            snapshot={"every_events": 500},
        )
    )
    events = list(sea_events(N, change_at=CHANGE))
    feed(engine, events[:2500])
    saved = copy.deepcopy(engine.slots[None].model)  # marked good by the snapshot at 2500
    feed(engine, events[2500:], 2500)
    predictions = engine.outputs.drain().predictions
    under_alarm = predictions[2604:3604]
    assert {p["source"] for p in under_alarm} == {"fallback"}
    assert [p["proba"] for p in under_alarm] == [
        saved.predict_proba_one(encode_features(e["x"])) for e in events[2604:3604]
    ]
    assert engine.slots[None].last_good_version == 1


def test_snapshot_fallback_without_a_snapshot_uses_the_baseline() -> None:
    engine = Engine(make_config(fallback={"kind": "snapshot", "warmup_labels": 10}))
    events = list(sea_events(10))
    feed(engine, events)
    predictions = engine.outputs.drain().predictions
    assert predictions[-1]["source"] == "fallback"
    majority = sum(e["y"] for e in events[:9]) > 4.5
    assert predictions[-1]["prediction"] is majority


# --------------------------------------------------------------------------- guard


def test_extreme_outlier_is_predicted_but_not_learned() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(300))
    engine.outputs.drain()
    slot = engine.slots[None]
    model_before, fallback_before = pickle.dumps(slot.model), pickle.dumps(slot.fallback)
    learned_before = engine.counters["learned"]
    engine.process({"id": "poison", "x": {"x1": 1e6, "x2": 5.0}, "y": True}, 300)
    (prediction,) = engine.outputs.drain().predictions
    assert prediction["id"] == "poison" and prediction["source"] == "model"
    assert engine.counters["guarded"] == 1
    assert engine.counters["labelled"] == 301  # scored: the metric saw it
    assert engine.counters["learned"] == learned_before
    assert pickle.dumps(slot.model) == model_before
    assert pickle.dumps(slot.fallback) == fallback_before
    assert engine.guard.flagged == 1
    # An ordinary event right after is learned again.
    engine.process(next(sea_events(1, seed=9)), 301)
    assert engine.counters["learned"] == learned_before + 1


def test_guard_off_learns_the_outlier() -> None:
    engine = Engine(make_config(guard={"enabled": False}))
    feed(engine, sea_events(300))
    engine.process({"id": "poison", "x": {"x1": 1e6, "x2": 5.0}, "y": True}, 300)
    assert (engine.counters["guarded"], engine.counters["learned"]) == (0, 301)


def test_regression_label_far_out_is_guarded() -> None:
    engine = Engine(make_config())
    rng = random.Random(4)
    for i in range(300):
        a = rng.random()
        engine.process({"id": i, "x": {"a": a}, "y": 2 * a + rng.gauss(0, 0.1)}, i)
    engine.process({"id": "bad", "x": {"a": 0.5}, "y": 1e6}, 300)
    assert (engine.counters["guarded"], engine.counters["learned"]) == (1, 300)


def test_burst_of_outliers_raises_a_guard_alert() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(500))
    burst = ({"id": f"p{i}", "x": {"x1": 1e6, "x2": 1e6}, "y": True} for i in range(300))
    feed(engine, burst, 500)
    guard_alerts = [a for a in engine.outputs.drain().alerts if a["signal"] == "guard"]
    # The detector fires at 511; the 200 flags that follow confirm it (a rate near 0 going to 1).
    assert [
        (a["kind"], a["detector"], a["first_index"], a["index"], a["action"]) for a in guard_alerts
    ] == [("drift", "adwin", 511, 711, "none")]
    assert guard_alerts[0]["effect"]["after"] > 0.9
    # A burst shorter than rebase_after (10,000 flagged events) is never taken for a new regime.
    assert engine.counters["guarded"] == 300


def test_feature_that_switches_regime_is_guarded_only_until_rebase() -> None:
    # A feature constant through the guard's warm-up (a 0/1 flag, an hour of day) that then
    # switches on: its first 1 is accepted (no spread yet to judge by), and a value within the
    # range already accepted is never an outlier, so learning goes on.
    engine = Engine(make_config())
    events = list(sea_events(1000))
    for i, event in enumerate(events):
        event["x"]["weekend"] = int(i >= 300)
    feed(engine, events)
    assert (engine.counters["guarded"], engine.counters["learned"]) == (0, 1000)
    # A new regime outside that range is held back for rebase_after flagged events (a duration
    # a person configured), then learned.
    engine = Engine(make_config(guard={"rebase_after": 200}))
    events = list(sea_events(1000))
    for i, event in enumerate(events):
        event["x"]["hour"] = 3 + (i % 2) if i < 300 else 40 + (i % 2)
    feed(engine, events)
    assert engine.counters["guarded"] == 200
    assert engine.counters["learned"] == 800
    assert engine.guard.rebases == 1


# --------------------------------------------------------------------------- late labels


def _unlabelled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "y"} for e in events]


def test_late_label_is_joined_scored_and_learned() -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 0}))
    events = list(sea_events(200))
    feed(engine, events[:100])
    feed(engine, _unlabelled(events[100:]), 100)
    predicted = {p["id"]: p["prediction"] for p in engine.outputs.drain().predictions}
    assert len(engine.pending) == 100 and engine.counters["learned"] == 100
    metric_before = engine.metric.get()
    for event in events[100:]:
        engine.process_label(orjson.dumps({"id": event["id"], "y": event["y"]}))
    assert len(engine.pending) == 0
    counters = engine.counters
    assert (counters["labels_joined"], counters["labelled"], counters["learned"]) == (100, 200, 200)
    correct = sum(predicted[e["id"]] == e["y"] for e in events)
    assert engine.metric.get() == pytest.approx(correct / 200)
    assert engine.metric.get() != metric_before


def test_first_label_may_arrive_late_and_decides_the_task() -> None:
    engine = Engine(make_config())
    engine.process({"id": "a", "x": {"v": 1.0}}, 0)
    assert engine.task is None
    engine.process_label({"id": "a", "y": 4.5})
    assert (engine.task, engine.counters["learned"]) == ("regression", 1)


def test_a_label_for_an_unknown_event_waits_then_is_dead_lettered_as_unmatched() -> None:
    engine = Engine(make_config(labels={"ttl_seconds": 60}))
    base = 1_704_067_200_000
    feed(engine, [{**e, "ts": base} for e in sea_events(10)])
    engine.process_label({"id": "nobody", "y": True})
    engine.process_label({"id": 3, "y": True})  # event 3 was labelled inline: nothing waits
    assert engine.counters["labels_too_late"] == 0  # they wait for an event with their id
    engine.process({"id": "late", "ts": base + 61_000, "x": {"x1": 1.0, "x2": 1.0}}, 10)
    dead = engine.outputs.drain().dead_letters
    assert [d["reason"] for d in dead] == ["label_unmatched", "label_unmatched"]
    assert all(d["source"] == "labels" for d in dead)
    assert (engine.counters["labels_too_late"], engine.counters["learned"]) == (2, 10)
    assert engine.counters["invalid"] == 0  # events: none was invalid


def test_a_label_that_comes_before_its_event_is_joined_when_the_event_comes() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(10))
    engine.process_label({"id": "soon", "y": True}, 0)
    engine.process({"id": "soon", "x": {"x1": 1.0, "x2": 1.0}}, 10)
    assert (engine.counters["labels_joined"], engine.counters["learned"]) == (1, 11)
    assert len(engine.pending) == 0 and len(engine.early_labels) == 0


def test_a_second_event_with_a_waiting_id_is_dead_lettered() -> None:
    engine = Engine(make_config())
    engine.process({"id": "a", "x": {"v": 1.0}}, 0)
    engine.process({"id": "a", "x": {"v": 2.0}}, 1)
    out = engine.outputs.drain()
    assert [p["offset"] for p in out.predictions] == [0]
    assert [d["reason"] for d in out.dead_letters] == ["duplicate_id"]
    engine.process_label({"id": "a", "y": 1.5})
    assert engine.counters["learned"] == 1


def test_label_after_its_time_to_live_is_too_late() -> None:
    engine = Engine(make_config(labels={"ttl_seconds": 60}))
    feed(engine, sea_events(10))
    base = 1_704_067_200_000
    engine.process({"id": "old", "ts": base + 10_000, "x": {"x1": 1.0, "x2": 1.0}}, 10)
    engine.process({"id": "new", "ts": base + 69_000, "x": {"x1": 1.0, "x2": 1.0}}, 11)
    engine.process_label({"id": "new", "y": False, "ts": base + 71_000})
    engine.process_label({"id": "old", "y": False, "ts": base + 71_000})
    assert engine.pending.expired == 1 and engine.counters["learned"] == 11
    engine.process_label({"id": "x", "y": False, "ts": base + 140_000})  # the "old" label's TTL
    assert (engine.counters["labels_joined"], engine.counters["labels_too_late"]) == (1, 1)


def test_the_record_time_expires_labels_of_events_without_ts() -> None:
    engine = Engine(make_config(labels={"ttl_seconds": 1}))
    feed(engine, sea_events(5))
    engine.process({"id": "w", "x": {"x1": 1.0, "x2": 1.0}}, 5, record_ts=2e12)
    engine.process({"id": "v", "x": {"x1": 1.0, "x2": 1.0}, "y": True}, 6, record_ts=2e12 + 1500)
    engine.process_label({"id": "w", "y": True}, record_ts=2e12 + 1500)
    assert engine.pending.expired == 1 and engine.counters["labels_joined"] == 0
    engine.process({"id": "u", "x": {"x1": 1.0, "x2": 1.0}, "y": True}, 7, record_ts=2e12 + 3000)
    assert engine.counters["labels_too_late"] == 1  # "w" waited a TTL for a second event


def test_a_label_without_ts_does_not_move_the_clock() -> None:
    # Events stamped in 2024, their labels sent today with no ts of their own: the Kafka time of
    # a label must not expire every waiting prediction.
    engine = Engine(make_config(labels={"ttl_seconds": 60}))
    base = 1_704_067_200_000
    engine.process({"id": "a", "ts": base, "x": {"x1": 1.0, "x2": 1.0}}, 0, record_ts=base)
    engine.process_label({"id": "a", "y": True}, 0, record_ts=base + 10**11)
    assert engine.counters["labels_joined"] == 1


def test_label_evicted_by_max_pending_is_too_late() -> None:
    engine = Engine(make_config(labels={"max_pending": 2}))
    feed(engine, sea_events(5))
    feed(engine, ({"id": f"w{i}", "x": {"x1": 1.0, "x2": 2.0}} for i in range(3)), 5)
    assert engine.pending.evicted == 1
    for i in range(3):
        engine.process_label({"id": f"w{i}", "y": True})
    assert engine.counters["labels_joined"] == 2 and len(engine.early_labels) == 1
    engine.process_label({"id": "u1", "y": True})
    engine.process_label({"id": "u2", "y": True})  # over the bound: w0's label leaves
    assert engine.counters["labels_too_late"] == 1
    assert engine.counters["learned"] == 7


def test_invalid_late_label_is_dead_lettered_from_the_labels_source() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(5))
    engine.process_label(b'{"id": 1}', position=7)
    engine.process_label(b"nope", position=8)
    out = engine.outputs.drain()
    assert [(d["reason"], d["source"], d["position"]) for d in out.dead_letters] == [
        ("missing_label", "labels", 7),
        ("not_json", "labels", 8),
    ]


def test_late_label_of_the_wrong_type_is_dead_lettered_and_not_learned() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(5))
    engine.process({"id": "w", "x": {"x1": 1.0, "x2": 2.0}}, 5)
    engine.process_label({"id": "w", "y": "maybe"})
    assert [d["reason"] for d in engine.outputs.drain().dead_letters] == ["bad_label"]
    assert engine.counters["learned"] == 5


def test_label_watermark_skips_redelivered_labels() -> None:
    engine = Engine(make_config())
    feed(engine, sea_events(5))
    feed(engine, ({"id": f"w{i}", "x": {"x1": 1.0, "x2": 2.0}} for i in range(3)), 5)
    engine.process_label({"id": "w0", "y": True}, position=10)
    engine.process_label({"id": "w1", "y": True}, position=11)
    engine.process_label({"id": "w1", "y": True}, position=11)  # redelivered after a restart
    engine.process_label({"id": "w2", "y": True}, position=9)  # older than the watermark
    assert engine.label_watermark == 11
    assert (engine.counters["duplicates"], engine.counters["labels_joined"]) == (2, 2)
    assert len(engine.pending) == 1 and engine.counters["learned"] == 7


# --------------------------------------------------------------------------- duplicates


def test_event_at_or_below_the_watermark_is_skipped() -> None:
    engine = Engine(make_config())
    events = list(sea_events(10))
    feed(engine, events)
    engine.outputs.drain()
    engine.process(events[9], 9)
    engine.process(events[3], 3)
    assert engine.outputs.drain().predictions == []
    counters = engine.counters
    assert (counters["duplicates"], counters["events"], counters["learned"]) == (2, 10, 10)
    engine.process(events[0] | {"id": "next"}, 10)
    assert engine.counters["learned"] == 11 and engine.watermark == 10


# --------------------------------------------------------------------------- per-key models


def test_each_key_has_its_own_model() -> None:
    engine = Engine(make_config(model={"per_key": True}, fallback={"warmup_labels": 10}))
    rng = random.Random(2)
    for i in range(400):
        key = "up" if i % 2 else "down"
        v = rng.uniform(-1, 1)
        engine.process({"id": i, "key": key, "x": {"v": v}, "y": (v > 0) == (key == "up")}, i)
    up, down = engine.slots["up"], engine.slots["down"]
    assert up is not down and up.labels_learned == down.labels_learned == 200
    engine.process({"id": "a", "key": "up", "x": {"v": 0.8}}, 400)
    engine.process({"id": "b", "key": "down", "x": {"v": 0.8}}, 401)
    predictions = engine.outputs.drain().predictions[-2:]
    assert [(p["key"], p["prediction"], p["source"]) for p in predictions] == [
        ("up", True, "model"),
        ("down", False, "model"),
    ]


def test_least_recently_used_key_is_evicted_at_max_keys() -> None:
    engine = Engine(make_config(model={"per_key": True, "max_keys": 2}))
    for i, key in enumerate(["a", "b", "a", "c"]):
        engine.process({"id": i, "key": key, "x": {"v": 1.0}, "y": True}, i)
    assert list(engine.slots) == ["a", "c"]  # "b" was used least recently
    assert engine.counters["keys_evicted"] == 1
    engine.process({"id": 4, "key": "b", "x": {"v": 1.0}, "y": True}, 4)
    assert list(engine.slots) == ["c", "b"]
    assert engine.slots["b"].labels_learned == 1  # a fresh model: the old one is gone
    assert engine.counters["keys_evicted"] == 2


def test_without_per_key_every_key_shares_one_model() -> None:
    engine = Engine(make_config())
    for i, key in enumerate(["a", "b", "c"]):
        engine.process({"id": i, "key": key, "x": {"v": 1.0}, "y": True}, i)
    assert list(engine.slots) == [None] and engine.slots[None].labels_learned == 3


# --------------------------------------------------------------------------- micro-batches


def _batched(engine: Engine, items: list[Any], size: int) -> None:
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        engine.process_batch(chunk, list(range(start, start + len(chunk))))


def test_batch_predicts_every_valid_event_with_the_same_record_shape() -> None:
    items: list[Any] = list(sea_events(1000))
    items[120] = b"{broken"
    items[450] = {"id": 450, "x": {"x1": "a", "x2": [1]}, "y": True}
    batch = Engine(make_config(fallback={"warmup_labels": 0}))
    _batched(batch, items, 100)
    single = Engine(make_config(fallback={"warmup_labels": 0}))
    feed(single, items)
    b_out, s_out = batch.outputs.drain(), single.outputs.drain()
    assert [p["id"] for p in b_out.predictions] == [p["id"] for p in s_out.predictions]
    assert len(b_out.predictions) == 998
    assert [set(p) for p in b_out.predictions] == [set(p) for p in s_out.predictions]
    assert all(type(p["prediction"]) is bool for p in b_out.predictions[100:])
    assert [(d["reason"], d["position"]) for d in b_out.dead_letters] == [
        ("not_json", 120),
        ("bad_feature", 450),
    ]
    assert b_out.dead_letters[0]["original"] == "{broken"
    counters = batch.counters
    assert (counters["events"], counters["invalid"], counters["learned"]) == (1000, 2, 998)
    assert batch.metric.get() > 0.8


def test_a_plain_batch_is_its_own_model_input_with_the_same_outputs_as_encoding_each_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch of numbers under known names skips the per-row encoding (``_inputs``); the
    outputs are those of encoding every row, on batches that are plain, that bring a new
    feature, booleans, text in rows after the first, integers beside floats, or a missing
    feature."""
    import pandas as pd

    from driftline.learners.batch import MicroBatches

    rng = random.Random(5)
    items: list[dict[str, Any]] = []
    for i in range(1200):
        x: dict[str, Any] = {"a": rng.gauss(0, 1), "b": rng.randint(0, 5)}
        if i >= 300:
            x["late"] = rng.random()  # a new name in a batch of numbers
        if 500 <= i < 600:
            x["flag"] = i % 3 == 0  # booleans
        if 700 <= i < 800 and i % 2:
            x["town"] = rng.choice(["x", "y"])  # text, not in a batch's first row
        if 900 <= i < 1000 and i % 2:
            x["flag"] = i % 3 == 0  # booleans again (a known name), not in the first row
        if i % 7 == 0:
            del x["a"]  # missing
        items.append({"id": i, "x": x, "y": x.get("a", 0.0) + x["b"] > 2.5})

    shortcut = MicroBatches._inputs
    taken: list[bool] = []

    def watched(self: Any, features: list[dict[str, Any]]) -> Any:
        xs, frame = shortcut(self, features)
        taken.append(xs is features)
        return xs, frame

    def encode_rows(self: Any, features: list[dict[str, Any]]) -> Any:
        xs = [self.encoder.encode(x, self.counters) for x in features]
        return xs, pd.DataFrame.from_records(xs).fillna(0.0)

    def outputs(inputs: Any) -> tuple[list[Any], dict[str, int], Any]:
        monkeypatch.setattr(MicroBatches, "_inputs", inputs)
        engine = Engine(make_config(fallback={"warmup_labels": 0}))
        _batched(engine, items, 100)
        out = engine.outputs.drain()
        return out.predictions, dict(engine.counters), engine.encoder.names

    plain, reference = outputs(watched), outputs(encode_rows)
    # The batch path starts at the second batch (the task is known then): the 100s and 200s
    # plain, 300s a new name, 400s plain, 500s booleans, 600s plain, 700s text, 800s plain,
    # 900s booleans under a known name, then plain.
    assert taken == [True, True, False, True, False, True, False, True, False, True, True]
    assert [p["proba"] for p in plain[0]] == [p["proba"] for p in reference[0]]
    assert [p["prediction"] for p in plain[0]] == [p["prediction"] for p in reference[0]]
    assert plain[1] == reference[1]
    assert plain[2] == reference[2] == {"a", "b", "late", "flag", "town"}


def test_batch_predicts_with_the_model_as_it_was_then_learns_all() -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 0}))
    events = list(sea_events(300))
    engine.process_batch(events[:100])  # task unknown until now: the per-event path
    engine.outputs.drain()
    slot = engine.slots[None]
    before = copy.deepcopy(slot.model)
    engine.process_batch(events[100:200])
    predictions = engine.outputs.drain().predictions
    expected = [before.predict_proba_one(encode_features(e["x"])) for e in events[100:200]]
    assert len(predictions) == len(expected) == 100
    for record, proba in zip(predictions, expected, strict=True):
        assert record["proba"] == pytest.approx(proba, rel=1e-9)
    assert pickle.dumps(slot.model) != pickle.dumps(before)  # then it learned the batch
    assert slot.labels_learned == 200 and engine.counters["learned"] == 200


def test_a_batch_cut_shorter_than_batch_min_runs_per_event() -> None:
    """Fewer events than engine.batch_min (and than batch_size): the per-event path, the same
    bits as process() per event; a batch of batch_min events: one learn_many."""
    config = make_config(
        fallback={"warmup_labels": 0}, engine={"batch_size": 1000, "batch_min": 40}
    )
    events = list(sea_events(400))
    short, single, full = Engine(config), Engine(config), Engine(config)
    feed(single, events)
    for start in range(0, 400, 39):  # 39 < 40: every batch runs per event
        chunk = events[start : start + 39]
        short.process_batch(chunk, list(range(start, start + len(chunk))))
    assert short.outputs.drain().predictions == single.outputs.drain().predictions
    assert pickle.dumps(short.slots[None].model) == pickle.dumps(single.slots[None].model)
    full.process_batch(events[:40], list(range(40)))  # no task yet: per event
    full.process_batch(events[40:80], list(range(40, 80)))  # 40: learn_many
    per_event = Engine(config)
    feed(per_event, events[:80])
    assert full.counters["learned"] == per_event.counters["learned"] == 80
    assert pickle.dumps(full.slots[None].model) != pickle.dumps(per_event.slots[None].model)
    # batch_min never asks for more than batch_size: full batches of 20 use learn_many.
    small = Engine(make_config(fallback={"warmup_labels": 0}, engine={"batch_size": 20}))
    for start in range(0, 80, 20):
        small.process_batch(events[start : start + 20], list(range(start, start + 20)))
    assert pickle.dumps(small.slots[None].model) != pickle.dumps(per_event.slots[None].model)


def test_an_empty_batch_still_does_what_follows_events(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(make_config(fallback={"warmup_labels": 0}, engine={"batch_size": 1000}))
    feed(engine, sea_events(50))
    after: list[int] = []
    monkeypatch.setattr(Engine, "_after_events", lambda self: after.append(self.index))
    engine.process_batch([], [])  # expired early labels, a quiet incident, a due snapshot
    assert after == [50]


def test_batch_of_a_model_without_learn_many_runs_per_event() -> None:
    config = make_config(model={"name": "hoeffding_tree"}, fallback={"warmup_labels": 0})
    items: list[Any] = list(sea_events(600))
    items[50] = b"[]"
    batch, single = Engine(config), Engine(config)
    _batched(batch, items, 64)
    feed(single, items)
    b_out, s_out = batch.outputs.drain(), single.outputs.drain()
    assert b_out.predictions == s_out.predictions
    assert b_out.dead_letters == s_out.dead_letters
    assert batch.metric.get() == single.metric.get()
    assert batch.counters == single.counters


def test_batch_skips_duplicates_and_waits_for_late_labels() -> None:
    engine = Engine(make_config())
    events = list(sea_events(200))
    engine.process_batch(events[:100])
    engine.process_batch(events[90:150], list(range(90, 150)))
    assert engine.counters["duplicates"] == 10 and engine.counters["events"] == 150
    engine.process_batch(_unlabelled(events[150:]), list(range(150, 200)))
    assert len(engine.pending) == 50 and engine.counters["learned"] == 150
    for event in events[150:]:
        engine.process_label({"id": event["id"], "y": event["y"]})
    assert engine.counters["learned"] == 200


def test_batch_stops_monitoring_the_replaced_model_after_a_mid_batch_reset() -> None:
    # BUG: learners/batch.py hoists `watch_error` out of the row loop ("the slot's warm-up state
    # cannot change before learn_many"), but a drift action inside the loop does change it: after
    # a mid-batch reset the fresh monitor is fed the *replaced* model's errors for the rest of
    # the batch (332 of them here), where per-event mode monitors nothing for `warmup` labels.
    # Fix: after engine._on_alert(...) in the loop, stop feeding the monitor when slot.version
    # changed (e.g. `watch_error = watch_error and slot.version == version_at_start`).
    engine = Engine(make_config(policy={"action": "reset"}, detectors={"error": UNCONFIRMED}))
    events = list(sea_events(N, change_at=CHANGE))
    engine.process_batch(events[:500], list(range(500)))  # decides the task: creates the slot
    monitor = engine.slots[None].monitor
    fed: list[int] = []
    update = monitor.update

    def spy(value: float, index: int) -> Any:
        fed.append(index)
        return update(value, index)

    monitor.update = spy
    for start in range(500, N, 500):
        engine.process_batch(events[start : start + 500], list(range(start, start + 500)))
    drift = next(a for a in engine.outputs.drain().alerts if a["kind"] == "drift")
    assert (drift["signal"], drift["action"], drift["index"]) == ("error", "reset", 2667)
    assert [i for i in fed if 2667 < i < 3000] == []


def test_per_key_batch_runs_per_event() -> None:
    config = make_config(model={"per_key": True})
    items = [e | {"key": e["id"] % 3} for e in sea_events(300)]
    batch, single = Engine(config), Engine(config)
    _batched(batch, items, 50)
    feed(single, items)
    assert batch.outputs.drain().predictions == single.outputs.drain().predictions
    assert sorted(batch.slots) == [0, 1, 2]


# --------------------------------------------------------------------------- configuration


def test_unknown_custom_model_fails_at_the_first_label_with_a_config_error() -> None:
    engine = Engine(make_config(model={"name": f"{SELF}:NoSuchFactory"}))
    with pytest.raises(ConfigError, match=r"^model\.name: .* has no callable 'NoSuchFactory'"):
        engine.process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)


def test_classes_are_bounded_and_a_new_one_past_the_bound_is_a_dead_letter() -> None:
    engine = Engine(make_config(engine={"max_classes": 3}))
    for i, y in enumerate(["a", "b", "c", "d", "a"]):
        engine.process({"id": i, "x": {"v": float(i)}, "y": y}, i)
    out = engine.outputs.drain()
    assert [d["reason"] for d in out.dead_letters] == ["too_many_classes"]
    assert engine.classes == {"a", "b", "c"} and engine.counters["learned"] == 4


def test_rolling_accuracy_gives_rivers_values() -> None:
    # The engine's own rolling accuracy replaces River's Rolling(Accuracy) for speed: same values,
    # labels of every kind the engine accepts (1 and 1.0 and True are one class to both).
    from river import metrics, utils

    from driftline.learners.task_metric import RollingAccuracy

    rng = random.Random(1)
    river, ours = utils.Rolling(metrics.Accuracy, window_size=50), RollingAccuracy(50)
    assert river.get() == ours.get() == 0.0
    for _ in range(5000):
        y, p = rng.choice(["a", "b", True, 1, 2]), rng.choice(["a", "b", None, True, 1.0, 2])
        river.update(y, p)
        ours.update(y, p)
        assert river.get() == ours.get()
    engine = Engine(make_config())
    engine.process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)
    assert isinstance(engine.rolling, RollingAccuracy)
