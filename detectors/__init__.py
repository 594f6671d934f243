"""Drift detection: River's ADWIN and Page-Hinkley on errors, predictions and input features.

No Kafka, no Faust, no I/O: plain numbers in, plain alert dicts out.
"""

from detectors.features import FeatureMonitors, ScaledMonitor
from detectors.monitor import SignalMonitor
from detectors.registry import DETECTORS, build_detector, detector_names

__all__ = [
    "DETECTORS",
    "FeatureMonitors",
    "ScaledMonitor",
    "SignalMonitor",
    "build_detector",
    "detector_names",
]
