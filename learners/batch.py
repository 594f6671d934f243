"""Micro-batch mode: one ``predict_proba_many`` / ``learn_many`` call per batch where the model has
them. Detectors, guard, metric and outputs still see every event, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from learners.engine import Engine


def _has_many(model: Any, classification: bool) -> bool:
    predict = "predict_proba_many" if classification else "predict_many"
    if classification and not callable(getattr(model, "predict_proba_one", None)):
        return False  # a predict_one-only model: the per-event path handles it
    return callable(getattr(model, predict, None)) and callable(getattr(model, "learn_many", None))


def process_batch(
    engine: Engine,
    raws: list[Any],
    offsets: list[int] | None = None,
    record_ts: float | None = None,
) -> None:
    from learners.slot import loss

    if offsets is None:
        offsets = list(range(engine.index, engine.index + len(raws)))
    # Per-key models, an unknown task or a model without *_many: the per-event path.
    slot = engine._slot(None) if not engine.config.model.per_key else None
    classification = engine.task == "classification"
    # Challengers predict each event before they learn it: the per-event path does that.
    if slot is None or not _has_many(slot.model, classification) or slot.challengers:
        for raw, offset in zip(raws, offsets, strict=True):
            engine.process(raw, offset, record_ts)
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
            engine._tick(event["ts"], record_ts)
            events.append((event, offset, index))
    if not events:
        engine._after_events()
        return

    encode, counters = engine.encoder.encode, engine.counters
    xs = [encode(event["x"], counters) for event, _, _ in events]
    # Missing features are absent in per-event mode; a frame needs a value: the raw value 0.
    frame = pd.DataFrame.from_records(xs).fillna(0.0)
    model_predictions: list[Any] = [None] * len(xs)
    probas: list[dict[Any, float] | None] = [None] * len(xs)
    try:
        if classification:
            proba_frame = slot.model.predict_proba_many(frame)
            if proba_frame.shape[1]:
                # numpy, not DataFrame.to_dict: that alone costs more than the model per row.
                classes = list(proba_frame.columns)
                table = proba_frame.to_numpy()
                model_predictions = [classes[i] for i in table.argmax(axis=1).tolist()]
                probas = [dict(zip(classes, row, strict=True)) for row in table.tolist()]
        else:
            model_predictions = slot.model.predict_many(frame).tolist()
    except Exception:
        slot.predict_errors += 1

    learn_rows: list[int] = []
    learn_labels: list[Any] = []
    # Hoisted out of the per-row loop: the slot's warm-up state cannot change before learn_many.
    guard_on = engine.config.guard.enabled
    fallback_on = engine.config.fallback.kind != "none"
    watch_inputs = engine.features is not None or engine.prediction_monitor is not None
    monitor = slot.monitor
    watch_error = monitor is not None and slot.labels_learned > engine.config.detectors.error.warmup
    metric_update = engine.metric.update
    rolling = engine.rolling
    scorecard = engine.scorecard
    labelled = guarded = 0
    # Every row was predicted by the model as it was at the start of the batch.
    version = slot.version
    for row, ((event, offset, index), xm) in enumerate(zip(events, xs, strict=True)):
        y = event["y"]
        flagged = guard_on and engine._guard(event["x"], y, index)
        model_prediction, proba = model_predictions[row], probas[row]
        if fallback_on and slot.use_fallback(model_prediction):
            prediction, shown_proba = slot.predict_fallback(xm)
            source = "fallback"
        else:
            prediction, shown_proba, source = model_prediction, proba, "model"
        engine._emit_prediction(event, prediction, shown_proba, source, version, offset)
        if watch_inputs:
            engine._watch_inputs(event["x"], model_prediction, proba, index, slot, flagged)
        if y is None:
            entry = (None, xm, prediction, model_prediction, flagged, offset, version, ())
            engine._wait_for_label(event["id"], entry, slot)
            continue
        labelled += 1
        if scorecard is not None:
            scorecard.add(y, prediction, classification)
        if prediction is not None:
            metric_update(y, prediction)
            if rolling is not None:
                rolling.update(y, prediction)
        if flagged:
            guarded += 1
            continue
        slot.update_champion_metric(y, model_prediction, version)
        slot.learn_fallback(y, model_prediction)
        learn_rows.append(row)
        learn_labels.append(y)
        if watch_error and model_prediction is not None:
            alert = monitor.update(  # type: ignore[union-attr]
                loss(model_prediction, y, classification), index
            )
            if alert is not None:
                engine._on_alert(alert, slot)
                if slot.version != version:
                    # The batch was predicted by the replaced model: its errors say nothing
                    # about the new one, whose monitor starts afresh.
                    watch_error = False
    engine.counters["labelled"] += labelled
    engine.counters["guarded"] += guarded

    if learn_rows:
        batch_x = frame if len(learn_rows) == len(frame) else frame.iloc[learn_rows]
        batch_y = pd.Series(learn_labels, index=batch_x.index)
        try:
            slot.model.learn_many(batch_x, batch_y)
            if slot.background is not None:
                slot.background.learn_many(batch_x, batch_y)
                slot.background_labels += len(learn_rows)
            # A challenger started inside this batch (at a warning) has no predictions of it
            # to pair; it learns the batch all the same.
            for challenger in slot.challengers:
                for row, y in zip(learn_rows, learn_labels, strict=True):
                    challenger.learn(xs[row], y)
            slot.labels_learned += len(learn_rows)
            engine.counters["learned"] += len(learn_rows)
        except Exception:
            slot.learn_errors += 1
    slot.drop_stale_background(engine.index)
    engine._after_events()
