"""The steps of one event, shared by the per-event loop and the micro-batch path: which model
(slot) it goes to, validation, the guard, serving the model's prediction or the fallback, the
data-drift monitors, scoring a label, the error monitor, and labels that wait for their event.

A mixin of :class:`driftline.learners.engine.Engine` (which sets every attribute below); the micro-batch
path (:mod:`driftline.learners.batch`) differs only in predicting and learning a batch at once.
"""

from __future__ import annotations

from typing import Any

import orjson

from driftline.detectors import FeatureMonitors, SignalMonitor
from driftline.learners.alerting import AlertActions
from driftline.learners.checkpoints import Checkpoints
from driftline.learners.encoding import FeatureEncoder
from driftline.learners.events import (
    Decoded,
    InvalidRecord,
    Unparsed,
    dead_letter,
    decode_event,
    decoded_value,
    validate_event,
)
from driftline.learners.guard import OutlierGuard
from driftline.learners.labels import MAX_CLOCK_SKEW_MS, PendingLabels
from driftline.learners.model_error import loss
from driftline.learners.slices import SliceMonitors, slice_monitor
from driftline.learners.slot import ModelSlot
from driftline.learners.task_metric import METRIC_CLASSES, TaskAndMetric

#: What waits for a late label: (key, encoded inputs, prediction served, the model's own
#: prediction, flagged by the guard, offset, model version, the challengers' predictions, the
#: event's slices or None). Snapshots of an older driftline hold entries without the last one.
Entry = tuple[Any, dict[str, Any], Any, Any, bool, int, int, tuple[tuple[int, Any], ...], Any]


class EventSteps(TaskAndMetric, AlertActions, Checkpoints):
    """The per-event steps of :class:`driftline.learners.engine.Engine`."""

    source: str
    task_reason: str
    binary: bool | None
    metric_name: str
    rolling: Any
    scorecard: Any
    dead_letter_reasons: dict[str, int]
    pending: PendingLabels
    early_labels: PendingLabels
    guard: OutlierGuard
    encoder: FeatureEncoder
    guard_monitor: SignalMonitor
    features: FeatureMonitors | None
    slices: SliceMonitors | None

    # ------------------------------------------------------------------ slots

    def _slot(self, key: Any) -> ModelSlot | None:
        if self.task is None or self.binary is None:
            return None  # no label seen yet: which model to build is not known
        key = key if self.config.model.per_key else None
        slots = self.slots
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = ModelSlot(self.config, self.task, self.binary)
            if len(slots) > self.config.model.max_keys:
                slots.popitem(last=False)  # least recently used
                self.counters["keys_evicted"] += 1
        elif key is not None:
            slots.move_to_end(key)
        return slot

    # ------------------------------------------------------------------ one event

    def _reject(self, raw: Any, error: InvalidRecord, source: str, position: Any) -> None:
        self.counters["invalid"] += 1
        self.dead_letter_reasons[error.reason] = self.dead_letter_reasons.get(error.reason, 0) + 1
        if isinstance(raw, Unparsed | Decoded):
            raw = raw.original
        elif isinstance(raw, dict):
            try:
                raw = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS, default=repr)
            except TypeError:  # e.g. an int beyond 64 bits: a dead letter must never raise
                raw = repr(raw)
        record = dead_letter(raw, error, source, position)
        record["partition"] = self.partition
        self.outputs.dead_letters.append(record)

    def _validate(
        self,
        raw: bytes | str | dict | Decoded | Unparsed,
        offset: int,
        features: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        cfg = self.config.engine
        try:
            if isinstance(raw, Decoded):
                value = decoded_value(raw, cfg.max_event_bytes)
                event = validate_event(value, cfg.max_abs_value, features)
            elif isinstance(raw, dict):
                event = validate_event(raw, cfg.max_abs_value, features)
            elif isinstance(raw, Unparsed):
                raise raw.error
            else:
                event = decode_event(raw, cfg.max_event_bytes, cfg.max_abs_value)
            if event["y"] is not None:
                self._check_label(event["y"])
            elif event["id"] in self.pending:
                raise InvalidRecord(
                    "duplicate_id",
                    f"an event with id {event['id']!r} is already waiting for its label: "
                    "a late label could not tell them apart (ids must be unique)",
                )
        except InvalidRecord as error:
            self._reject(raw, error, self.source, offset)
            return None
        return event

    def _tick(self, event_ts: float | None, record_ts: float | None) -> None:
        # One clock for both drivers: event time. An event's own ``ts``, else the time of the
        # record that carried it (the Kafka timestamp, live); never the wall clock, so a replay
        # expires exactly the labels the first run expired.
        ts = event_ts if event_ts is not None else record_ts
        if ts is not None and record_ts is not None:
            # A producer clock far ahead must not expire every waiting label at once: a time
            # is trusted up to a minute past the record's own (in the log: the same on replay).
            ts = min(ts, record_ts + MAX_CLOCK_SKEW_MS)
        if ts is not None and ts > self.clock_ms:
            self.clock_ms = ts

    def _admit(
        self,
        raw: Any,
        offset: int,
        record_ts: float | None,
        features: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any] | None, int] | None:
        """Count an event and validate it: ``None`` for a redelivered one (at or below the
        watermark), else the event (``None`` when it was invalid: a dead letter) and its index.
        ``features``: its features, checked already with the rest of a micro-batch."""
        if offset <= self.watermark:
            self.counters["duplicates"] += 1  # already learned: at-least-once delivery resent it
            return None
        index = self.index
        self.index = index + 1
        counters = self.counters
        counters["events"] += 1
        event = self._validate(raw, offset, features)
        if event is not None:
            counters["valid"] += 1
            self._tick(event["ts"], record_ts)
        return event, index

    def _after_events(self) -> None:
        """After an event (or a micro-batch): close a quiet incident, snapshot when due."""
        if self.early_labels:  # labels that waited their TTL for an event: dead letters now
            self._drop_unmatched_labels()
        if self.incidents.open is not None and self.incidents.quiet(self.index):
            self._close_quiet_incident()  # looks at every slot's alarm: only once it is due
        self._maybe_snapshot()

    def _guard(self, x: dict[str, Any], y: Any, index: int) -> bool:
        numeric_y = y if self.task == "regression" and self.config.guard.check_labels else None
        flagged = self.guard.check(x, numeric_y) is not None
        alert = self.guard_monitor.update(1.0 if flagged else 0.0, index)
        if alert is not None:
            self._on_alert(alert, None)
        return flagged

    def _predicted(
        self,
        event: dict[str, Any],
        offset: int,
        index: int,
        slot: ModelSlot | None,
        xm: dict[str, Any],
        model_prediction: Any,
        proba: dict[Any, float] | None,
        version: int,
        flagged: bool,
    ) -> Entry | None:
        """Everything between the model's prediction of an event (made by model ``version``) and
        learning its label: serve it or the fallback, emit it, show the inputs and the prediction
        to the data-drift monitors. Returns what learning the label needs, or ``None`` when the
        event has no label yet (it waits for it)."""
        if slot is None:
            prediction, served_proba, source = None, None, "fallback"
        elif slot.use_fallback(model_prediction) and self.config.fallback.kind != "none":
            prediction, served_proba = slot.predict_fallback(xm)
            source = "fallback"
        else:
            prediction, served_proba, source = model_prediction, proba, "model"
        self._emit_prediction(event, prediction, served_proba, source, version, offset)
        if self.features is not None or self.prediction_monitor is not None:
            self._watch_inputs(event["x"], model_prediction, proba, index, slot, flagged)
        # The version that predicted: a late label must not feed an old model's error to the
        # monitor of the model that replaced it. Challengers predict now, before any learns it.
        shadow = slot.shadow_predictions(xm) if slot is not None and slot.challengers else ()
        cells = self.slices.observe(event["x"]) if self.slices is not None else None
        head = (event["key"], xm, prediction, model_prediction, flagged, offset, version)
        entry: Entry = (*head, shadow, cells)
        if event["y"] is None:
            self._wait_for_label(event["id"], entry, slot)
            return None
        return entry

    def _emit_prediction(
        self,
        event: dict[str, Any],
        prediction: Any,
        proba: dict[Any, float] | None,
        source: str,
        model_version: int,
        offset: int,
    ) -> None:
        self.counters["predicted_by_model" if source == "model" else "predicted_by_fallback"] += 1
        self.outputs.predictions.append(
            {
                "id": event["id"],
                "key": event["key"],
                "prediction": prediction,
                "confidence": proba[prediction] if proba and prediction in proba else None,
                "proba": proba,
                "model_version": model_version,
                "source": source,
                "partition": self.partition,
                "offset": offset,
                "metric": self._metric_now(),
            }
        )

    def _watch_inputs(
        self,
        x: dict[str, Any],
        model_prediction: Any,
        proba: Any,
        index: int,
        slot: ModelSlot | None,
        flagged: bool = False,
    ) -> None:
        # A flagged (outlier/poison) event must not shape a feature's reference window.
        if self.features is not None and not flagged:
            for alert in self.features.update(x, index):
                self._on_alert(alert, None)
        if (
            self.prediction_monitor is not None
            and slot is not None
            and model_prediction is not None
            and slot.labels_learned >= self.config.detectors.prediction.warmup
        ):
            for alert in self.prediction_monitor.update(model_prediction, index):
                if alert["kind"] == "drift" and not self._beats_majority_class():
                    self.prediction_monitor.unskilled += 1
                    continue
                self._on_alert(alert, slot)

    # ------------------------------------------------------------------ a label

    def _score(self, entry: Entry, y: Any) -> bool:
        """Count a label and score what was served for it; ``False`` when the guard flagged the
        event (predicted, never learned from)."""
        self.counters["labelled"] += 1
        prediction = entry[2]
        if self.scorecard is not None:
            self.scorecard.add(y, prediction, self.task == "classification")
        if prediction is not None:
            self.metric.update(y, prediction)
            if self.rolling is not None:
                self.rolling.update(y, prediction)
        if self.prediction_monitor is not None and self.task == "classification":
            self._count_label(y)
        if self.slices is not None and len(entry) > 8 and entry[8] is not None:
            self.slices.score(entry[8], y, prediction, METRIC_CLASSES[self.metric_name])
        if entry[4]:
            self.counters["guarded"] += 1
            return False
        return True

    def _watch_error(
        self,
        slot: ModelSlot,
        key: Any,
        model_prediction: Any,
        y: Any,
        version: int,
        index: int,
        cells: Any = None,
    ) -> None:
        """The model's error on a label, to its concept-drift monitor and those of the event's
        slices ``cells`` (only while the model that predicted is the champion, and past its
        warm-up)."""
        if slot.monitored(model_prediction) and version == slot.version:
            error = loss(model_prediction, y, slot.classification)
            alert = slot.monitor.update(error, index)  # type: ignore[union-attr]
            if alert is not None:
                self._on_alert(alert, slot, key)
            # Not when that alert replaced the model: the error was the replaced model's.
            if cells is not None and self.slices is not None and version == slot.version:
                self._watch_slices(cells, error, index)

    def _watch_slices(self, cells: Any, error: float, index: int) -> None:
        task = self.task or "classification"
        alerts = self.slices.watch(  # type: ignore[union-attr]
            cells, error, index, lambda signal: slice_monitor(self.config, task, signal)
        )
        for alert in alerts:
            self._on_alert(alert, None)

    def _learn(self, slot: ModelSlot | None, entry: Entry, y: Any, index: int) -> None:
        """Score, then learn one label (the micro-batch path learns its rows at once instead)."""
        if slot is None or not self._score(entry, y):
            return
        key, xm, _, model_prediction, _, _, version, shadow, *cells = entry
        if slot.learn(xm, y, model_prediction, version, shadow):
            self.counters["learned"] += 1
        self._watch_error(slot, key, model_prediction, y, version, index, *cells)
        if slot.background is not None:
            slot.drop_stale_background(index)
        if slot.challengers:
            self._maybe_promote(slot, key, index)

    def _wait_for_label(self, event_id: Any, entry: Entry, slot: ModelSlot | None) -> None:
        """Keep a prediction for its late label, or join a label that came before its event."""
        early = self.early_labels.pop(event_id, self.clock_ms)
        self._drop_unmatched_labels()
        if early is None:
            self.pending.add(event_id, entry, self.clock_ms)
            return
        y = early[2]
        try:
            self._check_label(y)
        except InvalidRecord as error:
            self._reject(early[0], error, "labels", early[1])
            return
        self.counters["labels_joined"] += 1
        self._learn(slot, entry, y, self.index)

    def _drop_unmatched_labels(self) -> None:
        self.early_labels.expire(self.clock_ms)
        for event_id, (raw, position, _) in self.early_labels.take_dropped():
            self.counters["labels_too_late"] += 1
            why = (
                f"no event with id {event_id!r} was waiting for a label, nor came within "
                f"{self.config.labels.ttl_seconds:g} s (event time) or "
                f"{self.config.labels.max_pending:,} labels: already labelled, past the TTL, "
                "or never sent"
            )
            self._reject(raw, InvalidRecord("label_unmatched", why), "labels", position)
            self.counters["invalid"] -= 1  # a label, not an event: counted as too late
