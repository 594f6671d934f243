"""Drift detection: River's ADWIN and Page-Hinkley on errors, predictions and input features.

No Kafka, no Faust, no I/O: plain numbers in, plain alert dicts out.

The names below load on first use, so that importing :mod:`detectors.config_error` (all that
:mod:`learners.config`, and so ``driftline --help``, needs) does not import River.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.effect import Reference, z_threshold
    from detectors.features import FeatureMonitors, ScaledMonitor
    from detectors.incidents import IncidentTracker
    from detectors.monitor import SignalMonitor
    from detectors.predictions import PredictionMonitors
    from detectors.registry import DETECTORS, build_detector, detector_names

_WHERE = {
    "DETECTORS": "detectors.registry",
    "FeatureMonitors": "detectors.features",
    "IncidentTracker": "detectors.incidents",
    "PredictionMonitors": "detectors.predictions",
    "Reference": "detectors.effect",
    "ScaledMonitor": "detectors.features",
    "SignalMonitor": "detectors.monitor",
    "build_detector": "detectors.registry",
    "detector_names": "detectors.registry",
    "z_threshold": "detectors.effect",
}

__all__ = [
    "DETECTORS",
    "FeatureMonitors",
    "IncidentTracker",
    "PredictionMonitors",
    "Reference",
    "ScaledMonitor",
    "SignalMonitor",
    "build_detector",
    "detector_names",
    "z_threshold",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
