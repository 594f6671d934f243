"""Micro-batch mode: one ``predict_proba_many`` / ``learn_many`` call per batch where the model has
them. Detectors, guard, metric and outputs still see every event, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from learners.engine import Engine


def _has_many(model: Any, classification: bool) -> bool:
    predict = "predict_proba_many" if classification else "predict_many"
    return callable(getattr(model, predict, None)) and callable(getattr(model, "learn_many", None))


def process_batch(
    engine: Engine,
    raws: list[Any],
    offsets: list[int] | None = None,
    now_ms: float | None = None,
) -> None:
    from learners.engine import encode_features

    if offsets is None:
        offsets = list(range(engine.index, engine.index + len(raws)))
    # Per-key models, an unknown task or a model without *_many: the per-event path.
    slot = engine._slot(None) if not engine.config.model.per_key else None
    classification = engine.task == "classification"
    if slot is None or not _has_many(slot.model, classification):
        for raw, offset in zip(raws, offsets, strict=True):
            engine.process(raw, offset, now_ms)
        return

    events: list[tuple[dict[str, Any], int, int]] = []
    for raw, offset in zip(raws, offsets, strict=True):
        if offset <= engine.watermark:
            engine.counters["duplicates"] += 1
            continue
        index = engine.index
        engine.index += 1
        engine.counters["events"] += 1
        engine.watermark = offset
        event = engine._validate(raw, offset)
        if event is not None:
            engine.counters["valid"] += 1
            engine._tick(event["ts"], now_ms)
            events.append((event, offset, index))
    if not events:
        engine._maybe_snapshot()
        return

    xs = [encode_features(event["x"]) for event, _, _ in events]
    # Missing features are absent in per-event mode; a frame needs a value: 0 after scaling.
    frame = pd.DataFrame.from_records(xs).fillna(0.0)
    model_predictions: list[Any]
    probas: list[dict[Any, float] | None]
    try:
        if classification:
            proba_frame = slot.model.predict_proba_many(frame)
            if proba_frame.shape[1]:
                probas = proba_frame.to_dict(orient="records")
                model_predictions = list(proba_frame.idxmax(axis=1))
            else:
                probas, model_predictions = [None] * len(xs), [None] * len(xs)
        else:
            model_predictions, probas = list(slot.model.predict_many(frame)), [None] * len(xs)
    except Exception:
        slot.predict_errors += 1
        model_predictions, probas = [None] * len(xs), [None] * len(xs)

    learn_rows: list[int] = []
    learn_labels: list[Any] = []
    for row, ((event, offset, index), xm) in enumerate(zip(events, xs, strict=True)):
        y = event["y"]
        flagged = engine._guard(event["x"], y, index)
        model_prediction, proba = model_predictions[row], probas[row]
        if slot.use_fallback(model_prediction) and engine.config.fallback.kind != "none":
            prediction, shown_proba = slot.predict_fallback(xm)
            source = "fallback"
        else:
            prediction, shown_proba, source = model_prediction, proba, "model"
        engine._emit_prediction(event, prediction, shown_proba, source, slot, offset)
        engine._watch_inputs(event["x"], model_prediction, proba, index, slot)
        entry = (None, xm, prediction, model_prediction, flagged, offset)
        if y is None:
            engine.pending.add(event["id"], entry, engine.clock_ms)
            continue
        engine.counters["labelled"] += 1
        if prediction is not None:
            engine.metric.update(y, prediction)
            if engine.rolling is not None:
                engine.rolling.update(y, prediction)
        if flagged:
            engine.counters["guarded"] += 1
            continue
        slot.fallback.learn(y)
        learn_rows.append(row)
        learn_labels.append(y)
        if slot.monitored(model_prediction):
            if classification:
                error = 0.0 if model_prediction == y else 1.0
            else:
                error = abs(float(y) - float(model_prediction))
            alert = slot.monitor.update(error, index)
            if alert is not None:
                engine._on_alert(alert, slot)

    if learn_rows:
        batch_x = frame.iloc[learn_rows]
        batch_y = pd.Series(learn_labels, index=batch_x.index)
        try:
            slot.model.learn_many(batch_x, batch_y)
            if slot.background is not None:
                slot.background.learn_many(batch_x, batch_y)
                slot.background_labels += len(learn_rows)
            slot.labels_learned += len(learn_rows)
            engine.counters["learned"] += len(learn_rows)
        except Exception:
            slot.learn_errors += 1
    slot.drop_stale_background(engine.index)
    engine._maybe_snapshot()
