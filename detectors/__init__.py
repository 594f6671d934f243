"""Drift detection: River's ADWIN and Page-Hinkley on errors, predictions and input features.

No Kafka, no Faust, no I/O: plain numbers in, plain alert dicts out.

The names below load on first use, so that importing :mod:`driftline.detectors.config_error` (all that
:mod:`driftline.learners.config`, and so ``driftline --help``, needs) does not import River.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.detectors.effect import Reference, z_threshold
    from driftline.detectors.features import FeatureMonitors, ScaledMonitor
    from driftline.detectors.incidents import IncidentTracker
    from driftline.detectors.monitor import SignalMonitor
    from driftline.detectors.predictions import PredictionMonitors
    from driftline.detectors.registry import DETECTORS, build_detector, detector_names

_WHERE = {
    "DETECTORS": "driftline.detectors.registry",
    "FeatureMonitors": "driftline.detectors.features",
    "IncidentTracker": "driftline.detectors.incidents",
    "PredictionMonitors": "driftline.detectors.predictions",
    "Reference": "driftline.detectors.effect",
    "ScaledMonitor": "driftline.detectors.features",
    "SignalMonitor": "driftline.detectors.monitor",
    "build_detector": "driftline.detectors.registry",
    "detector_names": "driftline.detectors.registry",
    "z_threshold": "driftline.detectors.effect",
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
