"""Prediction drift: what the model outputs, watched without waiting for labels.

Regression: the predicted value, scaled by a reference window (a :class:`ScaledMonitor`).
Classification: the share of each predicted class, a 0/1 signal per class (``prediction:<class>``;
the first class seen is implied by the others, so two classes make one signal). A model's
confidence is *not* watched: it creeps up while the model learns a stable concept, which is
learning, not drift.

>>> import random
>>> rng = random.Random(7)
>>> mon = PredictionMonitors("adwin", {}, regression=False, min_effect=0.5, ert=1_000_000,
...                          confirm_events=500, warning=False)
>>> stream = [rng.random() < 0.2 for _ in range(5000)] + [rng.random() < 0.6 for _ in range(3000)]
>>> alerts = [a for i, p in enumerate(stream) for a in mon.update(p, i)]
>>> [(a["signal"], a["kind"], a["index"]) for a in alerts]
[('prediction:True', 'drift', 5556), ('prediction:True', 'recovered', 6556)]
>>> round(alerts[0]["effect"]["before"], 2), round(alerts[0]["effect"]["after"], 2)
(0.21, 0.62)
"""

from __future__ import annotations

from typing import Any

from driftline.detectors.features import ScaledMonitor
from driftline.detectors.monitor import SignalMonitor


class PredictionMonitors:
    """One monitor for a regression's predicted value, or one per predicted class."""

    #: A class default: restored from a snapshot taken before the count existed.
    unskilled = 0

    def __init__(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        regression: bool,
        max_classes: int = 20,
        reference_size: int = 500,
        **kw: Any,
    ) -> None:
        self.kind = kind
        self.params = params
        self.regression = regression
        self.max_classes = max_classes
        self.reference_size = reference_size
        self.kw = kw
        self.classes: list[Any] = []
        self.monitors: dict[Any, SignalMonitor | ScaledMonitor] = {}
        #: Drifts of a classifier's outputs dropped because it did no better than always naming
        #: the most frequent class: such a model's predicted shares wander without the stream
        #: changing (an SGD model on a concept it cannot learn), and are not worth an alert.
        self.unskilled = 0

    @property
    def not_significant(self) -> int:
        return self.unskilled + sum(mon.not_significant for mon in self.monitors.values())

    @property
    def pending(self) -> bool:
        """An alarm on some prediction signal waits for its confirmation window."""
        return any(mon.pending for mon in self.monitors.values())

    def reset(self) -> None:
        """Another model now predicts: its outputs get references of their own."""
        self.classes.clear()
        self.monitors.clear()

    def _monitor(self, key: Any) -> SignalMonitor | ScaledMonitor:
        mon = self.monitors.get(key)
        if mon is None:
            if self.regression:
                mon = ScaledMonitor(
                    "prediction",
                    self.kind,
                    self.params,
                    reference_size=self.reference_size,
                    **self.kw,
                )
            else:
                mon = SignalMonitor(
                    f"prediction:{key}", self.kind, self.params, binary=True, **self.kw
                )
            self.monitors[key] = mon
        return mon

    def update(self, prediction: Any, index: int) -> list[dict[str, Any]]:
        if self.regression:
            alert = self._monitor(None).update(float(prediction), index)
            return [alert] if alert is not None else []
        classes = self.classes
        if prediction not in classes and len(classes) <= self.max_classes:
            classes.append(prediction)
        alerts = []
        for label in classes[1:]:
            alert = self._monitor(label).update(1.0 if prediction == label else 0.0, index)
            if alert is not None:
                alerts.append(alert)
        return alerts
