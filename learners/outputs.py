"""What the engine hands its driver: the records since the last drain, and the counters it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
