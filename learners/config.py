"""Typed, frozen configuration for the engine, built from plain mappings (TOML, env overrides).

Every section is a frozen dataclass whose fields all have working defaults. :func:`from_mapping`
builds one from a mapping and fails with a :class:`ConfigError` that names the offending key and
what would be valid:

>>> from_mapping(PolicyConfig, {"action": "reset"}).action
'reset'
>>> from_mapping(PolicyConfig, {"acton": "reset"})
Traceback (most recent call last):
...
driftline.detectors.config_error.ConfigError: policy.acton: unknown setting; valid keys are action, act_on, trust_model_during_alarm, challengers, promote_alpha, promote_window, promote_min_labels, promote_every, challenger_max_labels, promote_hold_labels
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.detectors.config_error import ConfigError as ConfigError
from driftline.learners.config_loader import from_mapping as from_mapping  # the sections' loader
from driftline.learners.config_loader import to_mapping as to_mapping


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


@dataclass(frozen=True)
class ModelConfig:
    """Which River model learns. ``name`` is a registry name or ``package.module:factory``."""

    section: typing.ClassVar[str] = "model"
    name: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    per_key: bool = False
    max_keys: int = 1000

    def __post_init__(self) -> None:
        _check(self.max_keys >= 1, "model.max_keys", f"must be >= 1, got {self.max_keys}")


@dataclass(frozen=True)
class DetectorConfig:
    """One drift detector on one kind of signal. ``kind`` is ``adwin``, ``page_hinkley`` or ``none``.

    ``warning_params`` configures a second, more sensitive detector of the same kind whose alarm is
    the warning level (the convention River's adaptive random forest uses); ``{}`` picks a default,
    ``warning = false`` turns it off.

    A detector's alarm becomes a drift only when, over the ``confirm_events`` values after it, the
    signal's mean moved by at least ``min_effect`` reference standard deviations and the move fits
    the false-alarm budget ``ert`` (expected events between false alarms on a stationary stream;
    ``0`` turns the budget off): see :mod:`driftline.detectors.effect`.
    """

    kind: str = "adwin"
    params: dict[str, Any] = field(default_factory=dict)
    warning: bool = True
    warning_params: dict[str, Any] = field(default_factory=dict)
    cooldown: int = 200
    recovery_events: int = 1000
    min_effect: float = 0.5
    ert: float = 1_000_000.0
    confirm_events: int = 500

    def __post_init__(self) -> None:
        for name in ("cooldown", "recovery_events", "confirm_events"):
            _check(getattr(self, name) >= 0, f"detectors.*.{name}", "must be >= 0")
        _check(self.min_effect >= 0, "detectors.*.min_effect", "must be >= 0")
        _check(
            self.ert == 0 or self.ert >= max(1, self.confirm_events),
            "detectors.*.ert",
            f"must be 0 (no budget) or at least confirm_events ({self.confirm_events})",
        )


@dataclass(frozen=True)
class ModelDetectorConfig(DetectorConfig):
    """A detector on the model's own output: its error or its predictions."""

    # A cold model's errors and predictions move as it learns; that is not drift. The model's
    # first `warmup` labels (after every reset too) are not fed to this detector.
    warmup: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.warmup >= 0, "detectors.*.warmup", "must be >= 0")


@dataclass(frozen=True)
class FeatureDetectorConfig(DetectorConfig):
    """Data-drift detectors on each numeric input feature (values scaled by a reference window)."""

    kind: str = "adwin"
    warning: bool = False
    features: tuple[str, ...] = ()
    max_features: int = 100
    reference_size: int = 500
    cooldown: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.max_features >= 1, "detectors.features.max_features", "must be >= 1")
        _check(self.reference_size >= 2, "detectors.features.reference_size", "must be >= 2")


@dataclass(frozen=True)
class DetectorsConfig:
    section: typing.ClassVar[str] = "detectors"
    # The error is 0/1 (or a scaled absolute error): a rise of 0.15 standard deviations is an
    # error rate of 0.20 going to about 0.26, confirmed on the 400 labels after the alarm.
    error: ModelDetectorConfig = field(
        default_factory=lambda: ModelDetectorConfig(min_effect=0.15, confirm_events=400)
    )
    # A model's outputs move while it learns: its predictions are watched from its 1000th label.
    # A class share moving by 0.3 standard deviations (0.55 -> 0.70) is a change a person acts
    # on; a concept change that a linear model absorbs often shows nowhere else (sea-abrupt's
    # third change: the error rises for ~700 events, the predicted share moves for good).
    prediction: ModelDetectorConfig = field(
        default_factory=lambda: ModelDetectorConfig(warning=False, warmup=1000, min_effect=0.3)
    )
    features: FeatureDetectorConfig = field(default_factory=FeatureDetectorConfig)


ACTIONS = ("none", "reset", "background", "rollback", "challenger")
SIGNALS = ("error", "prediction", "features", "guard", "slices")


@dataclass(frozen=True)
class PolicyConfig:
    """What a drift alarm does to the model.

    ``challenger`` (the default): a warning or drift starts a fresh model that learns in shadow on
    the same labels; it replaces the champion only when it is significantly better on the same
    recent labels (McNemar's exact test for classification, a paired test on absolute errors for
    regression, one-sided, over the last ``promote_window`` shared labels). ``promote_alpha`` is
    spent over a challenger's life (tested every ``promote_every`` labels for up to
    ``challenger_max_labels``): each test runs at ``promote_alpha * promote_every /
    challenger_max_labels``.
    ``challengers`` names models (registry names or ``package.module:factory``) that always learn
    in shadow and are promoted by the same rule.
    ``promote_hold_labels``: a challenger must stay significantly better for this many labels
    (every test in between a win) before it is promoted. Labels that lie consistently for less
    than that (a poisoning campaign, a labelling bug) cannot promote a model trained on them; a
    real change is adopted that much later. 0: promote at the first significant win.
    """

    section: typing.ClassVar[str] = "policy"
    action: Literal["none", "reset", "background", "rollback", "challenger"] = "challenger"
    act_on: tuple[str, ...] = ("error",)
    trust_model_during_alarm: bool = True
    challengers: tuple[str, ...] = ()
    promote_alpha: float = 0.01
    promote_window: int = 500
    promote_min_labels: int = 200
    promote_every: int = 50
    # A fresh challenger wins within a few hundred labels of a change when it wins at all (the
    # gradual streams: within 1,300); 2,000 keeps the shadow work of the ones that never do to
    # 40% of what 5,000 cost, with the same accuracy on every stream of bench_drift.
    challenger_max_labels: int = 2000
    promote_hold_labels: int = 0

    def __post_init__(self) -> None:
        for signal in self.act_on:
            _check(
                signal in SIGNALS, "policy.act_on", f"{signal!r} is not one of {', '.join(SIGNALS)}"
            )
        _check(0 < self.promote_alpha < 1, "policy.promote_alpha", "must be in (0, 1)")
        for name in ("promote_window", "promote_min_labels", "promote_every"):
            _check(getattr(self, name) >= 1, f"policy.{name}", "must be >= 1")
        _check(
            self.promote_min_labels <= self.promote_window,
            "policy.promote_min_labels",
            f"must be <= policy.promote_window ({self.promote_window})",
        )
        _check(self.challenger_max_labels >= 1, "policy.challenger_max_labels", "must be >= 1")
        _check(
            0 <= self.promote_hold_labels < self.challenger_max_labels,
            "policy.promote_hold_labels",
            f"must be >= 0 and < policy.challenger_max_labels ({self.challenger_max_labels})",
        )
        _check(
            len(set(self.challengers)) == len(self.challengers),
            "policy.challengers",
            "names a model twice",
        )


@dataclass(frozen=True)
class AlertsConfig:
    """What subscribers of the alert output receive.

    One change is one incident: the first confirmed drift opens it (a ``drift`` record), later
    detections join it (``update`` records), and ``close_after`` events with no new detection
    and no active alarm close it (``recovered``). ``warnings = false`` keeps warnings (which only
    start challengers) off the output.
    """

    section: typing.ClassVar[str] = "alerts"
    warnings: bool = True
    close_after: int = 2000

    def __post_init__(self) -> None:
        _check(self.close_after >= 1, "alerts.close_after", "must be >= 1")


@dataclass(frozen=True)
class FallbackConfig:
    """Where predictions come from while the model cannot be trusted: a cold model (fewer than
    ``warmup_labels`` labels) gives way to the fallback while the fallback has scored at least as
    well as it on the labels so far."""

    section: typing.ClassVar[str] = "fallback"
    kind: Literal["baseline", "snapshot", "none"] = "baseline"
    warmup_labels: int = 50

    def __post_init__(self) -> None:
        _check(self.warmup_labels >= 0, "fallback.warmup_labels", "must be >= 0")


@dataclass(frozen=True)
class GuardConfig:
    """Outlier / poisoning guard: flagged events are predicted but never learned from.

    A value more than ``z_threshold`` standard deviations from the mean of the values accepted
    so far (and outside their range) flags its event. A run of ``rebase_after`` flagged events
    (nearly in a row) is a new regime, learned from then on: the only evidence the guard takes
    that a run of outliers is real and not a burst of poison, so it is far longer than a burst
    by default.
    """

    section: typing.ClassVar[str] = "guard"
    enabled: bool = True
    z_threshold: float = 6.0
    warmup: int = 200
    rebase_after: int = 10_000
    check_labels: bool = True

    def __post_init__(self) -> None:
        _check(self.z_threshold > 0, "guard.z_threshold", "must be > 0")
        _check(self.warmup >= 0, "guard.warmup", "must be >= 0")
        _check(self.rebase_after >= 1, "guard.rebase_after", "must be >= 1")


@dataclass(frozen=True)
class LabelsConfig:
    """Late labels wait for their event in a bounded store with a time-to-live (event time).

    ``max_idle_ms`` (live service): at the head of the stream, how long an event waits for the
    labels partition to reach its time (and a label for the events partition) before it goes
    anyway: the latency a prediction may gain. It keeps replays identical when a label reaches
    the broker up to that much after a later event; 0 predicts at once (a label that then
    arrives late is applied on arrival and counted as reordered).
    """

    section: typing.ClassVar[str] = "labels"
    ttl_seconds: float = 3600.0
    max_pending: int = 100_000
    max_idle_ms: float = 50.0

    def __post_init__(self) -> None:
        _check(self.ttl_seconds > 0, "labels.ttl_seconds", "must be > 0")
        _check(self.max_pending >= 1, "labels.max_pending", "must be >= 1")
        _check(self.max_idle_ms >= 0, "labels.max_idle_ms", "must be >= 0 (0 = no waiting)")


@dataclass(frozen=True)
class SnapshotConfig:
    """When snapshots are taken, and where the signing key comes from."""

    section: typing.ClassVar[str] = "snapshot"
    every_events: int = 10_000
    every_seconds: float = 0.0
    key_file: str = ""
    #: Live service: snapshot records rotate over this many keys per partition, so that the
    #: compacted topic keeps this many snapshots (a bad newest record cannot erase the state).
    history: int = 4
    #: Live service: a snapshot is published in records (chunks) of at most this many bytes.
    chunk_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        _check(self.every_events >= 0, "snapshot.every_events", "must be >= 0 (0 = off)")
        _check(self.every_seconds >= 0, "snapshot.every_seconds", "must be >= 0 (0 = off)")
        _check(1 <= self.history <= 64, "snapshot.history", "must be between 1 and 64")
        _check(self.chunk_bytes >= 1024, "snapshot.chunk_bytes", "must be >= 1024")


@dataclass(frozen=True)
class SlicesConfig:
    """Per-slice metrics and error monitors (:mod:`driftline.learners.slices`): the features in ``by``
    (string, boolean or integer-coded) define the slices; at most ``max_values`` values per
    feature, first come first served, later new ones share its ``__other__`` slice."""

    section: typing.ClassVar[str] = "slices"
    by: tuple[str, ...] = ()
    max_values: int = 20

    def __post_init__(self) -> None:
        _check(self.max_values >= 1, "slices.max_values", f"must be >= 1, got {self.max_values}")
        _check(all(self.by), "slices.by", "a feature name must not be empty")
        _check(len(set(self.by)) == len(self.by), "slices.by", "names a feature twice")


METRICS = {"classification": ("accuracy", "f1", "macro_f1"), "regression": ("mae", "rmse", "r2")}


@dataclass(frozen=True)
class EngineConfig:
    """Everything the pure engine needs. TOML sections: [engine], [model], [detectors], ..."""

    section: typing.ClassVar[str] = "engine"
    task: Literal["auto", "classification", "regression"] = "auto"
    metric: str = "auto"
    batch_size: int = 1
    #: A micro-batch of fewer events than this (and than ``batch_size``), cut short by a label
    #: or a quiet stream, runs per event: River's ``*_many`` calls cost ~1.5 ms each whatever
    #: the size, more than the per-event work of up to ~128 events (BENCHMARKS.md).
    batch_min: int = 128
    rolling_window: int = 500
    max_event_bytes: int = 1_000_000
    max_abs_value: float = 1e15
    #: Distinct values admitted per string feature (one-hot inputs); later new values share the
    #: feature's overflow input ``name=__other__`` (counted: string_overflow).
    max_string_values: int = 1000
    #: Distinct model inputs in all (feature names, admitted string values, overflow buckets);
    #: past it a new string value overflows and a new feature name is left out (features_dropped).
    max_inputs: int = 10_000
    #: Distinct classes a classifier learns; a label of a new class past it is a dead letter
    #: (too_many_classes): every class costs weights and counts in the model and the fallback.
    max_classes: int = 1000

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "engine.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.batch_min >= 1, "engine.batch_min", f"must be >= 1, got {self.batch_min}")
        valid = ("auto", *METRICS["classification"], *METRICS["regression"])
        _check(self.metric in valid, "engine.metric", f"{self.metric!r}; valid: {', '.join(valid)}")
        for task, names in METRICS.items():
            if self.metric in names:
                # The metric implies the task: a label of the other kind would otherwise fail
                # at the first event, mid-stream.
                if self.task == "auto":
                    object.__setattr__(self, "task", task)
                _check(
                    self.task == task,
                    "engine.metric",
                    f"{self.metric!r} is a {task} metric, but engine.task is {self.task!r}",
                )
        _check(self.rolling_window >= 0, "engine.rolling_window", "must be >= 0")
        _check(self.max_event_bytes >= 1, "engine.max_event_bytes", "must be >= 1")
        _check(self.max_abs_value > 0, "engine.max_abs_value", "must be > 0")
        _check(self.max_string_values >= 1, "engine.max_string_values", "must be >= 1")
        _check(self.max_inputs >= 1, "engine.max_inputs", "must be >= 1")
        _check(self.max_classes >= 2, "engine.max_classes", "must be >= 2")


@dataclass(frozen=True)
class LearningConfig:
    """All engine sections together; ``driftline.settings.Settings`` extends it with Kafka ones."""

    section: typing.ClassVar[str] = ""

    engine: EngineConfig = field(default_factory=EngineConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detectors: DetectorsConfig = field(default_factory=DetectorsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    slices: SlicesConfig = field(default_factory=SlicesConfig)
