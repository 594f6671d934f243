"""The model's error: its loss on one label, and the concept-drift monitor that watches it."""

from __future__ import annotations

from typing import Any

from driftline.detectors import ScaledMonitor, SignalMonitor
from driftline.learners.config import LearningConfig

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
    options.update(min_effect=det.min_effect, ert=det.ert, confirm_events=det.confirm_events)
    if task == "regression":
        return ScaledMonitor("error", det.kind, params, reference_size=500, **options)
    # After a drift the error of a model that adapts is high, then settles: the settled level
    # is the reference for the next change.
    return SignalMonitor("error", det.kind, params, binary=True, rebase_on_recovery=True, **options)


def loss(prediction: Any, y: Any, classification: bool) -> float:
    """0/1 for classification, the absolute error for regression."""
    if classification:
        return 0.0 if prediction == y else 1.0
    return abs(float(y) - float(prediction))
