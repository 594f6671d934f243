"""``ModelSlot``: one model and everything that decides whether to trust it.

A slot holds the live model, its version, how many labels it has learned, the baseline fallback,
the concept-drift monitor on its error, the background model started at a warning, and the last
good copy (pickled at each snapshot while no alarm was active) that ``rollback`` returns to.
The engine has one slot per partition, or one per key when per-key models are on.
"""

from __future__ import annotations

import pickle
from typing import Any

from detectors import ScaledMonitor, SignalMonitor
from learners.config import LearningConfig
from learners.fallback import BaselineFallback
from learners.models import build_model

#: Defaults for the error signal, per detector kind (the user's `params` override them). ADWIN's
#: own delta (0.002) missed one of three abrupt drifts on sea-abrupt; 0.01 found all of them on
#: every built-in drifting stream with no false alarm on sea-stationary (two seeds each).
ERROR_DEFAULTS: dict[str, dict[str, Any]] = {"adwin": {"delta": 0.01}}


def error_monitor(config: LearningConfig, task: str) -> SignalMonitor | ScaledMonitor | None:
    """Concept drift watches the model's error: 0/1 for classification, |error| for regression
    (scaled by a reference window, as unbounded absolute errors would not fit one threshold)."""
    det = config.detectors.error
    if det.kind == "none":
        return None
    options: dict[str, Any] = {
        "warning": det.warning,
        "warning_overrides": det.warning_params,
        "direction": "up",
        "cooldown": det.cooldown,
        "recovery_events": det.recovery_events,
    }
    params = {**ERROR_DEFAULTS.get(det.kind, {}), **det.params}
    if task == "regression":
        return ScaledMonitor("error", det.kind, params, reference_size=500, **options)
    return SignalMonitor("error", det.kind, params, **options)


class ModelSlot:
    def __init__(self, config: LearningConfig, task: str, binary: bool) -> None:
        self.config = config
        self.task = task
        self.binary = binary
        self.classification = task == "classification"
        self.model = self._fresh_model()
        # A user's model may have predict_one only: then there are no class probabilities.
        self.has_proba = self.classification and callable(
            getattr(self.model, "predict_proba_one", None)
        )
        self.version = 1
        self.labels_learned = 0  # by the current model: decides when it is warm
        self.fallback = BaselineFallback(task)
        self.monitor = error_monitor(config, task)
        self.background: Any | None = None
        self.background_labels = 0
        self.background_since = 0
        self.last_good: bytes | None = None
        self.last_good_version = 0
        self._last_good_model: Any | None = None  # unpickled on demand, for the fallback
        self.predict_errors = 0
        self.learn_errors = 0

    def _fresh_model(self) -> Any:
        spec = self.config.model
        return build_model(spec.name, spec.params, self.task, binary=self.binary)

    @property
    def alarm_active(self) -> bool:
        return self.monitor is not None and self.monitor.alarm_active

    # ------------------------------------------------------------------ predict / learn

    def predict_model(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """The model's own prediction (``None`` when it raised or knows nothing yet)."""
        try:
            if self.has_proba:
                proba = self.model.predict_proba_one(x)
                if not proba:
                    return None, None
                return max(proba, key=proba.__getitem__), proba
            return self.model.predict_one(x), None
        except Exception:  # a model that raises must not stop the stream: fall back instead
            self.predict_errors += 1
            return None, None

    def monitored(self, model_prediction: Any) -> bool:
        """Whether this prediction's error goes to the drift monitor (not while warming up)."""
        return (
            self.monitor is not None
            and model_prediction is not None
            and self.labels_learned > self.config.detectors.error.warmup
        )

    def use_fallback(self, model_prediction: Any) -> bool:
        return (
            model_prediction is None
            or self.labels_learned < self.config.fallback.warmup_labels
            or (self.alarm_active and not self.config.policy.trust_model_during_alarm)
        )

    def predict_fallback(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        if self.config.fallback.kind == "snapshot" and self.last_good is not None:
            if self._last_good_model is None:
                self._last_good_model = pickle.loads(self.last_good)
            try:
                if self.classification:
                    proba = self._last_good_model.predict_proba_one(x)
                    if proba:
                        return max(proba, key=proba.__getitem__), proba
                else:
                    return self._last_good_model.predict_one(x), None
            except Exception:
                self.predict_errors += 1
        return self.fallback.predict()

    def learn(self, x: dict[str, Any], y: Any) -> bool:
        self.fallback.learn(y)
        try:
            self.model.learn_one(x, y)
        except Exception:
            self.learn_errors += 1
            return False
        self.labels_learned += 1
        if self.background is not None:
            try:
                self.background.learn_one(x, y)
                self.background_labels += 1
            except Exception:
                self.background = None
        return True

    # ------------------------------------------------------------------ drift actions

    def start_background(self, index: int) -> bool:
        if self.background is not None:
            return False
        self.background = self._fresh_model()
        self.background_labels = 0
        self.background_since = index
        return True

    def drop_stale_background(self, index: int) -> None:
        """A warning that never became a drift: its background model is not needed."""
        if (
            self.background is not None
            and not self.alarm_active
            and index - self.background_since > self.config.detectors.error.recovery_events
        ):
            self.background = None

    def apply(self, action: str) -> str:
        """Carry out a drift action; returns what was actually done."""
        if action == "none":
            return "none"
        done = action
        if action == "background" and self.background is not None and self.background_labels:
            self.model, self.labels_learned = self.background, self.background_labels
        elif action == "rollback" and self.last_good is not None:
            self.model = pickle.loads(self.last_good)
            # A rolled-back model was warm when it was saved: trust it at once.
            self.labels_learned = self.config.fallback.warmup_labels
        else:
            done = "reset" if action == "reset" else f"reset ({action}: nothing to use yet)"
            self.model = self._fresh_model()
            self.labels_learned = 0
        self.background = None
        self.version += 1
        if self.monitor is not None:
            self.monitor.reset()  # the old model's errors say nothing about the new one
        return done

    def mark_good(self) -> None:
        """Remember the current model as the rollback target, unless it is under suspicion."""
        if not self.alarm_active and self.labels_learned >= self.config.fallback.warmup_labels:
            self.last_good = pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL)
            self.last_good_version = self.version
            self._last_good_model = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last_good_model"] = None  # derivable from last_good
        return state
