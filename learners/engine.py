"""The engine: one pure, synchronous prequential loop shared by the live service and the backtest.

For each event: validate, guard, predict (or fall back), and once its label is known (inline or
late) score the prediction, update the drift detectors, learn; feed the data-drift monitors; act
on alerts; snapshot when due. No I/O: records go to :attr:`Engine.outputs`, which the driver drains.

>>> from learners.config import LearningConfig
>>> engine = Engine(LearningConfig())
>>> engine.process(b'{"id": 1, "x": {"a": 1.0}, "y": true}', offset=0)
>>> engine.process(b'{"id": 2, "x": "oops"}', offset=1)
>>> out = engine.outputs.drain()
>>> [(p["id"], p["source"]) for p in out.predictions], [d["reason"] for d in out.dead_letters]
([(1, 'fallback')], ['bad_x'])
>>> engine.task, engine.task_reason
('classification', 'inferred from boolean labels')
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
import river
from river import metrics, utils

from detectors import FeatureMonitors, IncidentTracker, PredictionMonitors, SignalMonitor
from learners.alerting import AlertActions
from learners.config import LearningConfig
from learners.encoding import FeatureEncoder
from learners.events import (
    InvalidRecord,
    Unparsed,
    dead_letter,
    decode_event,
    decode_label,
    validate_event,
    validate_label,
)
from learners.guard import OutlierGuard
from learners.labels import MAX_CLOCK_SKEW_MS, PendingLabels
from learners.models import infer_task
from learners.slot import ModelSlot, loss
from learners.snapshot import SnapshotError, load_snapshot, sign_snapshot

DRIFTLINE_VERSION = "0.1.0"
#: The layout of the engine state in a snapshot. 2: incidents, challengers and confirmation
#: windows (the drift loop); a snapshot of another layout is refused, not half-restored.
SNAPSHOT_FORMAT = 2

METRIC_CLASSES = {
    "accuracy": metrics.Accuracy,
    "f1": metrics.F1,
    "macro_f1": metrics.MacroF1,
    "mae": metrics.MAE,
    "rmse": metrics.RMSE,
    "r2": metrics.R2,
}
COUNTERS = (
    "events",
    "valid",
    "invalid",
    "predicted_by_model",
    "predicted_by_fallback",
    "labelled",
    "learned",
    "guarded",
    "labels_joined",
    "labels_too_late",
    "duplicates",
    "alerts",
    "incidents",
    "promotions",
    "snapshots",
    "keys_evicted",
    "string_overflow",
    "features_dropped",
)


@dataclass
class Outputs:
    """What the engine produced since the last :meth:`drain`."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)

    def drain(self) -> Outputs:
        drained = Outputs(self.predictions, self.alerts, self.snapshots, self.dead_letters)
        self.predictions, self.alerts, self.snapshots, self.dead_letters = [], [], [], []
        return drained


def encode_features(x: dict[str, Any]) -> dict[str, Any]:
    """Model input: strings one-hot (``"color=red": 1``), booleans 0/1, numbers as they are.

    Stateless and unbounded, for a model outside the engine; the engine encodes with its
    :class:`~learners.encoding.FeatureEncoder`, which caps the inputs an event stream can create.

    >>> encode_features({"n": 2.0, "color": "red", "on": True})
    {'n': 2.0, 'color=red': 1, 'on': 1}
    """
    for value in x.values():
        kind = type(value)
        if kind is str or kind is bool:
            break
    else:
        return x  # the common, all-numeric case: no copy
    out: dict[str, Any] = {}
    for name, value in x.items():
        if type(value) is str:
            out[f"{name}={value}"] = 1
        else:
            out[name] = int(value) if type(value) is bool else value
    return out


class Engine(AlertActions):
    """Prequential learning with drift detection for one partition (optionally per key)."""

    def __init__(
        self,
        config: LearningConfig,
        *,
        partition: int | None = None,
        snapshot_key: bytes | None = None,
        source: str = "events",
        owner: str | None = None,
    ) -> None:
        self.config = config
        self.partition = partition
        self.owner = owner  # who made it (the live service's app id), signed into snapshots
        self.source = source
        self._key = snapshot_key
        self.outputs = Outputs()
        cfg = config.engine
        self.task: str | None = None if cfg.task == "auto" else cfg.task
        self.task_reason = "configured" if self.task else "not known until the first label"
        self.binary: bool | None = None
        self.slots: OrderedDict[Any, ModelSlot] = OrderedDict()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.dead_letter_reasons: dict[str, int] = {}
        self.alerts_by: dict[tuple[str, str], int] = {}
        self.metric: Any = None
        self.rolling: Any = None
        self.index = 0
        self.watermark = -1
        self.label_watermark = -1  # last labels-topic offset processed (live service)
        #: Set by the backtest to collect per-label losses (for intervals and baselines).
        self.scorecard: Any = None
        self.clock_ms = 0.0
        self._snapshot_at_index = 0
        self._snapshot_at_ms = 0.0
        self.pending = PendingLabels(config.labels.ttl_seconds * 1000, config.labels.max_pending)
        #: Labels that came before their event (a producer's clock behind): they wait for it.
        self.early_labels = PendingLabels(
            config.labels.ttl_seconds * 1000, config.labels.max_pending, keep_dropped=True
        )
        guard = config.guard
        self.guard = OutlierGuard(
            guard.z_threshold, guard.warmup, guard.rebase_after, cfg.max_inputs
        )
        #: Model inputs from features, bounded (engine.max_string_values, engine.max_inputs).
        self.encoder = FeatureEncoder(cfg.max_string_values, cfg.max_inputs)
        # A jump in the rate of flagged events: at least 0.5 standard deviations of the reference
        # rate (a rate of 0.1% going past about 7%), within the error detector's budget.
        self.guard_monitor = SignalMonitor(
            "guard",
            "adwin",
            {},
            warning=False,
            direction="up",
            cooldown=1000,
            binary=True,
            min_effect=0.5,
            ert=config.detectors.error.ert,
            confirm_events=200,
        )
        self.incidents = IncidentTracker(config.alerts.close_after, partition)
        det = config.detectors
        self.features = (
            FeatureMonitors(
                det.features.kind,
                det.features.params,
                features=det.features.features,
                max_features=det.features.max_features,
                reference_size=det.features.reference_size,
                warning=det.features.warning,
                warning_overrides=det.features.warning_params,
                cooldown=det.features.cooldown,
                recovery_events=det.features.recovery_events,
                min_effect=det.features.min_effect,
                ert=det.features.ert,
                confirm_events=det.features.confirm_events,
            )
            if det.features.kind != "none"
            else None
        )
        self.prediction_monitor = (
            PredictionMonitors(
                det.prediction.kind,
                det.prediction.params,
                warning=det.prediction.warning,
                warning_overrides=det.prediction.warning_params,
                cooldown=det.prediction.cooldown,
                recovery_events=det.prediction.recovery_events,
                min_effect=det.prediction.min_effect,
                ert=det.prediction.ert,
                confirm_events=det.prediction.confirm_events,
                regression=self.task == "regression",
            )
            if det.prediction.kind != "none"
            else None
        )
        if self.task is not None:
            self._set_task(self.task, None)

    # ------------------------------------------------------------------ task and slots

    def _set_task(self, task: str, label: Any) -> None:
        self.task = task
        # Boolean labels get a binary model, any other classification label a multi-class one:
        # decided by the first label (None until then, even when the task is configured).
        if task == "regression":
            self.binary = False
        elif label is not None:
            self.binary = isinstance(label, bool)
        if self.prediction_monitor is not None:
            self.prediction_monitor.regression = task == "regression"
        name = self.config.engine.metric
        if name == "auto":
            name = "accuracy" if task == "classification" else "mae"
        self.metric_name = name
        self.metric = METRIC_CLASSES[name]()
        window = self.config.engine.rolling_window
        self.rolling = utils.Rolling(METRIC_CLASSES[name], window_size=window) if window else None

    def _check_label(self, y: Any) -> None:
        if self.task is None:
            task, why = infer_task(y)
            self._set_task(task, y)
            self.task_reason = f"inferred from {why}"
            return
        kind = type(y)  # exact types: validation already allowed only bool, int, float, str
        if self.binary is None and self.task == "classification" and kind is not float:
            self.binary = kind is bool
        if self.task == "regression":
            if kind is bool or kind is str:
                raise InvalidRecord("bad_label", f"regression needs a numeric label, got {y!r}")
        elif kind is float:
            raise InvalidRecord(
                "bad_label", f"classification needs a boolean, string or integer label, got {y!r}"
            )
        elif self.binary and kind is not bool:
            raise InvalidRecord("bad_label", f"this model was built for boolean labels, got {y!r}")

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

    # ------------------------------------------------------------------ the per-event loop

    def _reject(self, raw: Any, error: InvalidRecord, source: str, position: Any) -> None:
        self.counters["invalid"] += 1
        self.dead_letter_reasons[error.reason] = self.dead_letter_reasons.get(error.reason, 0) + 1
        if isinstance(raw, Unparsed):
            raw = raw.original
        elif isinstance(raw, dict):
            try:
                raw = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS, default=repr)
            except TypeError:  # e.g. an int beyond 64 bits: a dead letter must never raise
                raw = repr(raw)
        record = dead_letter(raw, error, source, position)
        record["partition"] = self.partition
        self.outputs.dead_letters.append(record)

    def _validate(self, raw: bytes | str | dict | Unparsed, offset: int) -> dict[str, Any] | None:
        cfg = self.config.engine
        try:
            if isinstance(raw, dict):
                event = validate_event(raw, cfg.max_abs_value)
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

    def process(
        self,
        raw: bytes | str | dict[str, Any],
        offset: int | None = None,
        record_ts: float | None = None,
    ) -> None:
        """Process one event (JSON bytes/text or an already decoded dict) at ``offset``;
        ``record_ts`` is the time of the record that carried it (used when it has no ``ts``)."""
        index = self.index
        offset = index if offset is None else offset
        if offset <= self.watermark:
            self.counters["duplicates"] += 1  # already learned: at-least-once delivery resent it
            return
        self.index = index + 1
        self.counters["events"] += 1
        event = self._validate(raw, offset)
        if event is not None:
            self.counters["valid"] += 1
            self._tick(event["ts"], record_ts)
            self._handle(event, offset, index)
        self.watermark = offset
        self._after_events()

    def _after_events(self) -> None:
        """After an event (or a micro-batch): close a quiet incident, snapshot when due."""
        if self.early_labels:  # labels that waited their TTL for an event: dead letters now
            self._drop_unmatched_labels()
        if self.incidents.open is not None and self.incidents.quiet(self.index):
            self._close_quiet_incident()  # looks at every slot's alarm: only once it is due
        self._maybe_snapshot()

    def _handle(self, event: dict[str, Any], offset: int, index: int) -> None:
        # The per-event hot path: disabled stages are skipped before any call is made.
        x = event["x"]
        y = event["y"]
        xm = self.encoder.encode(x, self.counters)
        flagged = self.config.guard.enabled and self._guard(x, y, index)
        slot = self._slot(event["key"])
        prediction, proba, source, model_prediction = self._predict(slot, xm)
        version = slot.version if slot is not None else 0
        self._emit_prediction(event, prediction, proba, source, version, offset)
        if self.features is not None or self.prediction_monitor is not None:
            self._watch_inputs(x, model_prediction, proba, index, slot, flagged)
        # The version that predicted: a late label must not feed an old model's error to the
        # monitor of the model that replaced it. Challengers predict now, before any learns it.
        shadow = slot.shadow_predictions(xm) if slot is not None and slot.challengers else ()
        entry = (event["key"], xm, prediction, model_prediction, flagged, offset, version, shadow)
        if y is None:
            self._wait_for_label(event["id"], entry, slot)
        else:
            self._learn(slot, entry, y, index)

    def _guard(self, x: dict[str, Any], y: Any, index: int) -> bool:
        numeric_y = y if self.task == "regression" and self.config.guard.check_labels else None
        flagged = self.guard.check(x, numeric_y) is not None
        alert = self.guard_monitor.update(1.0 if flagged else 0.0, index)
        if alert is not None:
            self._on_alert(alert, None)
        return flagged

    def _predict(self, slot: ModelSlot | None, xm: dict[str, Any]) -> tuple[Any, Any, str, Any]:
        if slot is None:
            return None, None, "fallback", None
        model_prediction, proba = slot.predict_model(xm)
        if slot.use_fallback(model_prediction) and self.config.fallback.kind != "none":
            prediction, fallback_proba = slot.predict_fallback(xm)
            return prediction, fallback_proba, "fallback", model_prediction
        return model_prediction, proba, "model", model_prediction

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
                self._on_alert(alert, slot)

    def _learn(self, slot: ModelSlot | None, entry: tuple, y: Any, index: int) -> None:
        if slot is None:
            return
        key, xm, prediction, model_prediction, flagged, _, version, shadow = entry
        self.counters["labelled"] += 1
        if self.scorecard is not None:
            self.scorecard.add(y, prediction, self.task == "classification")
        if prediction is not None:
            self.metric.update(y, prediction)
            if self.rolling is not None:
                self.rolling.update(y, prediction)
        if flagged:
            self.counters["guarded"] += 1  # predicted, never learned from
            return
        slot.update_champion_metric(y, model_prediction, version)
        if slot.learn(xm, y, model_prediction, version, shadow):
            self.counters["learned"] += 1
        if slot.monitored(model_prediction) and version == slot.version:
            alert = slot.monitor.update(  # type: ignore[union-attr]
                loss(model_prediction, y, slot.classification), index
            )
            if alert is not None:
                self._on_alert(alert, slot, key)
        if slot.background is not None:
            slot.drop_stale_background(index)
        if slot.challengers:
            self._maybe_promote(slot, key, index)

    def process_label(
        self,
        raw: bytes | str | dict[str, Any],
        position: Any = None,
        record_ts: float | None = None,
    ) -> None:
        """Join a late label ``{"id", "y"}`` to its waiting prediction, score it, learn.

        An integer ``position`` is the label's offset: one at or below :attr:`label_watermark`
        was already processed (a redelivery after restart) and is skipped. A label whose event
        has not been processed yet waits for it (bounded, with the same time-to-live); one that
        never finds its event becomes a ``label_unmatched`` dead letter when it leaves the store.
        """
        if isinstance(position, int):
            if position <= self.label_watermark:
                self.counters["duplicates"] += 1
                return
            self.label_watermark = position
        try:
            label = validate_label(raw) if isinstance(raw, dict) else decode_label(raw)
            # Only a label's own ts moves the clock: the Kafka time of a label sent today must
            # not expire the predictions of events stamped with their own (older) times.
            self._tick(label["ts"], None)
            if self.task is not None:
                self._check_label(label["y"])  # a wrong-typed label must not use up the entry
            entry = self.pending.pop(label["id"], self.clock_ms)
            if entry is None:
                # Not waiting (yet): its event may come after it. It waits for it, once.
                self.early_labels.add(label["id"], (raw, position, label["y"]), self.clock_ms)
                self._drop_unmatched_labels()
                return
            if self.task is None:
                self._check_label(label["y"])  # the first label decides the task
        except InvalidRecord as error:
            self._reject(raw, error, "labels", position)
            return
        self.counters["labels_joined"] += 1
        self._learn(self._slot(entry[0]), entry, label["y"], self.index)

    def _wait_for_label(self, event_id: Any, entry: tuple, slot: ModelSlot | None) -> None:
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

    # ------------------------------------------------------------------ micro-batches

    def process_batch(
        self,
        raws: list[bytes | str | dict[str, Any]],
        offsets: list[int] | None = None,
        record_ts: float | None = None,
    ) -> None:
        """Process a micro-batch: predict all with the model as it was, then learn all.

        Uses River's ``predict_proba_many`` / ``learn_many`` when the model has them (one mean
        gradient per batch for linear models: not the same numbers as looping ``learn_one``);
        otherwise the same per-event path. Outputs have the same shape either way.
        """
        from learners.batch import process_batch

        process_batch(self, raws, offsets, record_ts)

    # ------------------------------------------------------------------ snapshots

    def _maybe_snapshot(self) -> None:
        every = self.config.snapshot.every_events
        every_ms = self.config.snapshot.every_seconds * 1000
        if every_ms and not self._snapshot_at_ms:
            self._snapshot_at_ms = self.clock_ms  # the clock starts at the first event
        if (every and self.index - self._snapshot_at_index >= every) or (
            every_ms and self.clock_ms - self._snapshot_at_ms >= every_ms
        ):
            self.snapshot()

    def header(self) -> dict[str, Any]:
        """Lineage and counters: what a snapshot says about itself (readable without the key)."""
        slot = self.slots.get(None) or next(iter(self.slots.values()), None)
        metric = self.metric.get() if self.metric is not None else None
        return {
            "format": SNAPSHOT_FORMAT,
            "model": self.config.model.name,
            "model_params": self.config.model.params,
            "task": self.task,
            "partition": self.partition,
            "owner": self.owner,
            "model_version": slot.version if slot else 0,
            "model_versions": {str(k): s.version for k, s in self.slots.items()},
            "events": self.index,
            "labelled": self.counters["labelled"],
            "learned": self.counters["learned"],
            "watermark": self.watermark,
            "label_watermark": self.label_watermark,
            # Strictly increasing along a lineage (a restored engine continues it): recovery
            # restores the highest and refuses one below what its group restored or published.
            "sequence": self.counters["snapshots"],
            "history": self.config.snapshot.history,
            "metric_name": getattr(self, "metric_name", None),
            "metric": None if metric is None or math.isnan(metric) else metric,
            "river_version": river.__version__,
            "driftline_version": DRIFTLINE_VERSION,
            "created_at": time.time(),
        }

    def snapshot(self) -> dict[str, Any] | None:
        """The scheduled snapshot: the current models become the rollback targets (when no alarm
        is active), the schedule restarts, and a signed checkpoint is emitted if there is a key."""
        self._snapshot_at_index = self.index
        self._snapshot_at_ms = self.clock_ms
        for slot in self.slots.values():
            slot.mark_good()
        return self.checkpoint()

    def checkpoint(self) -> dict[str, Any] | None:
        """A signed snapshot of the state as it is, with no side effect on what comes next: for
        shutdown, revocation or the end of a backtest, so that restoring from it and going on
        gives exactly the run that would have happened without it."""
        if self._key is None:
            return None
        self.counters["snapshots"] += 1  # before the state is taken: a restore counts this one
        header = self.header()
        blob = sign_snapshot(self._state(), header, self._key)
        record = {"partition": self.partition, "header": header, "blob": blob}
        self.outputs.snapshots.append(record)
        return record

    #: Not part of a snapshot: I/O, the key, the config (the current one applies), who this
    #: engine is (a snapshot never decides which partition or owner it restores into), and the
    #: backtest's scorecard (every loss of the run: a report, not state).
    _NOT_STATE = frozenset(
        {"outputs", "_key", "config", "partition", "source", "owner", "scorecard"}
    )

    def _state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_STATE}

    @classmethod
    def restore(
        cls, blob: bytes, key: bytes | None, config: LearningConfig, **kwargs: Any
    ) -> Engine:
        """An engine exactly as it was when ``blob`` was taken, for the ``partition`` and
        ``owner`` given in ``kwargs``. Refused (:class:`SnapshotError`) when the signature does
        not verify, or when the signed header names another partition, owner or model: a valid
        snapshot copied under another key must not move a partition's watermark."""
        header, state = _load_checked(blob, key, config, kwargs)
        del header
        engine = cls(config, snapshot_key=key, **kwargs)
        engine.__dict__.update(state)
        for slot in engine.slots.values():
            slot.config = config
        return engine

    #: What a warm start takes from a snapshot: what was learned, not where a stream was.
    _LEARNED = (
        "task",
        "task_reason",
        "binary",
        "slots",
        "guard",
        "guard_monitor",
        "encoder",
        "features",
        "prediction_monitor",
    )

    @classmethod
    def warm_start(
        cls, blob: bytes, key: bytes | None, config: LearningConfig, **kwargs: Any
    ) -> Engine:
        """A new engine for a stream it has not seen that starts with what ``blob`` learned: its
        models (champion and challengers), detectors, guard and fallback, e.g. the
        ``model.snapshot`` of a backtest. Its offsets, waiting labels, counters, metric and
        incidents start afresh. Verified like :meth:`restore` (signature, state format, model
        name); the partition and owner it was made for do not matter, as it resumes nothing."""
        header, state = _load_checked(blob, key, config, {})
        del header
        engine = cls(config, snapshot_key=key, **kwargs)
        engine.__dict__.update({name: state[name] for name in cls._LEARNED if name in state})
        for slot in engine.slots.values():
            slot.config = config
        if engine.task is not None:
            engine._set_task(engine.task, None)  # a metric of its own, from now on
        return engine


def _load_checked(
    blob: bytes, key: bytes | None, config: LearningConfig, expected: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    def check(header: dict[str, Any]) -> None:
        if header.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(
                f"refused: the snapshot has state format {header.get('format')!r}, this "
                f"driftline reads format {SNAPSHOT_FORMAT} (it was written by another version: "
                "start fresh, or replay the history)"
            )
        for name in ("partition", "owner"):
            if name in expected and header.get(name) != expected[name]:
                raise SnapshotError(
                    f"refused: the snapshot is for {name} {header.get(name)!r}, "
                    f"not {expected[name]!r}"
                )
        if header.get("model") != config.model.name:
            raise SnapshotError(
                f"refused: the snapshot holds model {header.get('model')!r}, the config says "
                f"{config.model.name!r} (start fresh, or restore with the config it was made with)"
            )

    return load_snapshot(blob, key, check)
