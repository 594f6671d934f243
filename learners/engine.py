"""The engine: one pure, synchronous prequential loop shared by the live service and the backtest.

For each event: validate, guard, predict (or fall back), and once its label is known (inline or
late) score the prediction, update the drift detectors, learn; feed the data-drift monitors; act
on alerts; snapshot when due. No I/O: records go to :attr:`Engine.outputs`, which the driver drains.

The steps live by responsibility: :mod:`driftline.learners.event_steps` (one event, shared with the
micro-batch path of :mod:`driftline.learners.batch`), :mod:`driftline.learners.alerting` (what an alert does) and
:mod:`driftline.learners.checkpoints` (snapshots); this module holds the entry points and the state.

>>> from driftline.learners.config import LearningConfig
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

from collections import OrderedDict
from typing import Any

from driftline.detectors import FeatureMonitors, IncidentTracker, PredictionMonitors, SignalMonitor
from driftline.learners.batch import MicroBatches
from driftline.learners.checkpoints import DRIFTLINE_VERSION, SNAPSHOT_FORMAT, load_checked
from driftline.learners.config import LearningConfig
from driftline.learners.encoding import FeatureEncoder, encode_features
from driftline.learners.events import Decoded, InvalidRecord, decode_label, validate_label
from driftline.learners.guard import OutlierGuard
from driftline.learners.labels import PendingLabels
from driftline.learners.outputs import COUNTERS, Outputs
from driftline.learners.slices import SliceMonitors
from driftline.learners.slot import ModelSlot

__all__ = ["DRIFTLINE_VERSION", "SNAPSHOT_FORMAT", "Engine", "Outputs", "encode_features"]


class Engine(MicroBatches):
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
        #: Alerts emitted, by (detector, signal, kind): read by the live metrics at scrape time.
        self.alert_counts: dict[tuple[str, str, str], int] = {}
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
        #: Per-slice metrics and error monitors ([slices]); None when no feature slices.
        self.slices = SliceMonitors.from_config(config.slices)
        if self.task is not None:
            self._set_task(self.task, None)

    # ------------------------------------------------------------------ entry points

    def process(
        self,
        raw: bytes | str | dict[str, Any] | Decoded,
        offset: int | None = None,
        record_ts: float | None = None,
    ) -> None:
        """Process one event (JSON bytes/text, an already decoded dict, or :class:`Decoded`) at
        ``offset``; ``record_ts`` is the time of the record that carried it (used when it has no
        ``ts``)."""
        offset = self.index if offset is None else offset
        admitted = self._admit(raw, offset, record_ts)
        if admitted is None:
            return  # a redelivery
        event, index = admitted
        if event is not None:
            self._handle(event, offset, index)
        self.watermark = offset
        self._after_events()

    def _handle(self, event: dict[str, Any], offset: int, index: int) -> None:
        # The per-event hot path: disabled stages are skipped before any call is made.
        x = event["x"]
        xm = self.encoder.encode(x, self.counters)
        flagged = self.config.guard.enabled and self._guard(x, event["y"], index)
        slot = self._slot(event["key"])
        if slot is None:
            model_prediction, proba, version = None, None, 0
        else:
            model_prediction, proba = slot.predict_model(xm)
            version = slot.version
        entry = self._predicted(
            event, offset, index, slot, xm, model_prediction, proba, version, flagged
        )
        if entry is not None:
            self._learn(slot, entry, event["y"], index)

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

    @classmethod
    def restore(
        cls, blob: bytes, key: bytes | None, config: LearningConfig, **kwargs: Any
    ) -> Engine:
        """An engine exactly as it was when ``blob`` was taken, for the ``partition`` and
        ``owner`` given in ``kwargs``. Refused (:class:`SnapshotError`) when the signature does
        not verify, or when the signed header names another partition, owner or model: a valid
        snapshot copied under another key must not move a partition's watermark."""
        header, state = load_checked(blob, key, config, kwargs)
        del header
        engine = cls(config, snapshot_key=key, **kwargs)
        engine.__dict__.update(state)
        for slot in engine.slots.values():
            slot.config = config
        if engine.slices is None or not engine.slices.matches(config.slices):
            # Slices of other features (or none): this config's start afresh.
            engine.slices = SliceMonitors.from_config(config.slices)
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
        header, state = load_checked(blob, key, config, {})
        del header
        engine = cls(config, snapshot_key=key, **kwargs)
        engine.__dict__.update({name: state[name] for name in cls._LEARNED if name in state})
        for slot in engine.slots.values():
            slot.config = config
        if engine.task is not None:
            engine._set_task(engine.task, None)  # a metric of its own, from now on
        return engine
