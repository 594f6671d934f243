"""Drift detection: River's ADWIN and Page-Hinkley on errors, predictions and input features.

No Kafka, no Faust, no I/O: plain numbers in, plain alert dicts out.
"""

from detectors.effect import Reference, z_threshold
from detectors.features import FeatureMonitors, ScaledMonitor
from detectors.incidents import IncidentTracker
from detectors.monitor import SignalMonitor
from detectors.predictions import PredictionMonitors
from detectors.registry import DETECTORS, build_detector, detector_names

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
