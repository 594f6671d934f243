"""A micro-batch's labelled rows scored by column give the per-event steps' outputs and state."""

from __future__ import annotations

import pickle
import random
from typing import Any

import orjson
import pytest
from conftest import UNCONFIRMED
from river import metrics

from driftline.learners.batch_columns import (
    ColumnScoring,
    accuracy_before_each,
    update_accuracy,
)
from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.offline.scoring import Scorecard


def test_accuracy_by_column_is_river_accuracy_row_by_row() -> None:
    rng = random.Random(1)
    ys = [rng.choice("abc") for _ in range(300)]
    guesses = [y if rng.random() < 0.7 else rng.choice("abcd") for y in ys]
    one_by_one, by_column = metrics.Accuracy(), metrics.Accuracy()
    seen = []
    for y, guess in zip(ys[:50], guesses[:50], strict=True):  # some history first
        one_by_one.update(y, guess)
        by_column.update(y, guess)
    for y, guess in zip(ys[50:], guesses[50:], strict=True):
        seen.append(one_by_one.get())
        one_by_one.update(y, guess)
    hits = [y == guess for y, guess in zip(ys[50:], guesses[50:], strict=True)]
    assert accuracy_before_each(by_column, hits) == seen
    update_accuracy(by_column, ys[50:], guesses[50:])
    # The same sums, the same keys in the same order, the same sample count: the same bytes.
    assert pickle.dumps(by_column) == pickle.dumps(one_by_one)
    assert by_column.cm.n_samples == 300


def test_accuracy_before_any_label_is_river_s_zero() -> None:
    assert accuracy_before_each(metrics.Accuracy(), [True, False, True]) == [0.0, 1.0, 0.5]


LEAN = {
    "detectors": {"prediction": {"kind": "none"}, "features": {"kind": "none"}},
    "guard": {"enabled": False},
}

CONFIGS: dict[str, dict[str, Any]] = {
    "lean, challenger policy": {**LEAN},
    "lean, reset at once": {
        **LEAN,
        "policy": {"action": "reset"},
        "detectors": {**LEAN["detectors"], "error": UNCONFIRMED},
    },
    "no rolling metric, fallback during alarms": {
        **LEAN,
        "policy": {"action": "none", "trust_model_during_alarm": False},
        "detectors": {**LEAN["detectors"], "error": UNCONFIRMED},
        "engine": {"rolling_window": 0},
    },
    "background model": {
        **LEAN,
        "policy": {"action": "background"},
        "detectors": {**LEAN["detectors"], "error": {**UNCONFIRMED, "warning": True}},
    },
    "default config (the column path never applies)": {},
}


def _stream(seed: int, classes: int) -> list[Any]:
    """SEA-like, its concept moving twice; every 13th event's label comes late, one event is
    broken and one has a label of the wrong type."""
    rng = random.Random(seed)
    items: list[Any] = []
    for i in range(6000):
        x1, x2 = rng.uniform(0, 10), rng.uniform(0, 10)
        threshold = 10.0 if i < 2000 else 6.0 if i < 4000 else 13.0
        total = x1 + x2 + (rng.gauss(0, 1.5) if rng.random() < 0.1 else 0.0)
        y: Any = total > threshold
        if classes == 3:
            y = "lo" if total < threshold - 3 else "hi" if total > threshold + 3 else "mid"
        event: dict[str, Any] = {"id": i, "ts": 1_704_067_200_000 + 1000 * i, "x": {"a": x1}}
        event["x"]["b"] = x2
        if i % 13:
            event["y"] = y
        items.append(event)
    items[777] = b"{broken"
    items[3100]["y"] = 2.5
    return items


def _run(
    items: list[Any], overrides: dict[str, Any], columns: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], Any, bytes, list[float]]:
    score_columns = ColumnScoring._score_columns
    done: list[int] = []

    def spied(self: Any, slot: Any, events: list[Any], *args: Any) -> int:
        rows = score_columns(self, slot, events, *args) if columns else 0
        end = args[-1] + rows
        # Rows stop at a row without a label, the batch's end, or else at an alert: -rows.
        done.append(
            -rows if rows and end < len(events) and events[end][0]["y"] is not None else rows
        )
        return rows

    monkeypatch.setattr(ColumnScoring, "_score_columns", spied)
    config = from_mapping(
        LearningConfig,
        {**overrides, "engine": {**overrides.get("engine", {}), "batch_size": 200}},
        "",
    )
    engine = Engine(config)
    engine.scorecard = Scorecard()  # as a backtest has one
    late: list[dict[str, Any]] = []
    for start in range(0, len(items), 200):
        chunk = items[start : start + 200]
        engine.process_batch(chunk, list(range(start, start + len(chunk))))
        for label in late:  # the late labels of the batch before, between batches
            engine.process_label(label)
        late = [
            {"id": e["id"], "y": items[e["id"] - 1].get("y", True)}
            for e in chunk
            if isinstance(e, dict) and "y" not in e
        ]
    out = engine.outputs.drain()
    outputs = (out.predictions, out.alerts, out.dead_letters, dict(engine.counters))
    return done, outputs, pickle.dumps(engine._state()), list(engine.scorecard.losses)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rows_scored_by_column_leave_what_the_per_event_steps_leave(
    name: str, classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _stream(7, classes)
    done, outputs, state, losses = _run(items, CONFIGS[name], True, monkeypatch)
    _, per_event_outputs, per_event_state, per_event_losses = _run(
        items, CONFIGS[name], False, monkeypatch
    )
    predictions, alerts, dead_letters, counters = outputs

    # Every record, with its running metric, as published: the same bytes (so the same keys in
    # the same order: the records are built in two places, driftline.learners.event_steps too).
    def published(records: list[dict[str, Any]]) -> list[bytes]:
        return [orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) for record in records]

    assert published(predictions) == published(per_event_outputs[0])
    assert alerts == per_event_outputs[1]
    assert dead_letters == per_event_outputs[2]
    assert counters == per_event_outputs[3]
    assert losses == per_event_losses
    # Model, metrics, monitors, fallback, waiting labels: every byte of the engine's state.
    assert state == per_event_state
    assert "drift" in {alert["kind"] for alert in alerts}
    if name.startswith("default"):
        assert not any(done)
    else:
        assert sum(map(abs, done)) > 1200  # (not while a challenger or the fallback serves)
        if name == "lean, reset at once":
            # An alert inside a batch: the rows up to it by column, the rest per event.
            assert any(rows < 0 for rows in done)


def test_an_alarm_that_starts_without_an_alert_stops_the_column_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A drift inside the cooldown of the one before sends no alert, yet turns the alarm on, and
    the fallback serves the next row (trust_model_during_alarm = false): found by review."""
    rng = random.Random(0)
    items = []
    for i in range(4000):
        x1, x2 = rng.uniform(0, 10), rng.uniform(0, 10)
        flipped = (i // 100) % 2 == 1  # the concept flips every 100 events
        items.append({"id": i, "x": {"a": x1, "b": x2}, "y": (x1 + x2 > 10) != flipped})
    config = CONFIGS["no rolling metric, fallback during alarms"]
    done, outputs, state, losses = _run(items, config, True, monkeypatch)
    _, per_event_outputs, per_event_state, per_event_losses = _run(
        items, config, False, monkeypatch
    )
    assert outputs[0] == per_event_outputs[0]
    assert outputs[3] == per_event_outputs[3]
    assert (state, losses) == (per_event_state, per_event_losses)
    assert outputs[3]["predicted_by_fallback"] > 0
    assert sum(map(abs, done)) > 1000
