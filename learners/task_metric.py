"""The task (classification or regression, from the first label), the label types it accepts, and
the prequential metric that scores it.

A mixin of :class:`driftline.learners.engine.Engine` (through
:class:`~driftline.learners.event_steps.EventSteps`, which sets every attribute below).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from river import metrics, utils

from driftline.learners.config import LearningConfig
from driftline.learners.events import InvalidRecord
from driftline.learners.models import infer_task

#: A classifier whose accuracy so far avoids less than this share of the errors of always naming
#: the most frequent class (kappa-M) has not learned the concept: its prediction drift is noise.
MIN_KAPPA_M = 0.1

METRIC_CLASSES = {
    "accuracy": metrics.Accuracy,
    "f1": metrics.F1,
    "macro_f1": metrics.MacroF1,
    "mae": metrics.MAE,
    "rmse": metrics.RMSE,
    "r2": metrics.R2,
}


class TaskAndMetric:
    """Decides the task and the metric on the first label; checks every later label's type."""

    config: LearningConfig
    task: str | None
    task_reason: str
    binary: bool | None
    metric_name: str
    metric: Any
    rolling: Any
    prediction_monitor: Any
    counters: dict[str, int]

    def _set_task(self, task: str, label: Any) -> None:
        self.task = task
        # Boolean labels get a binary model, any other classification label a multi-class one:
        # decided by the first label (None until then, even when the task is configured).
        if task == "regression":
            self.binary = False
        elif label is not None:
            self.binary = isinstance(label, bool)
        if self.prediction_monitor is not None:
            self.prediction_monitor.regression = task == "regression"
        name = self.config.engine.metric
        if name == "auto":
            name = "accuracy" if task == "classification" else "mae"
        self.metric_name = name
        self.metric = METRIC_CLASSES[name]()
        window = self.config.engine.rolling_window
        if not window:
            self.rolling = None
        elif name == "accuracy":
            self.rolling = RollingAccuracy(window)
        else:
            self.rolling = utils.Rolling(METRIC_CLASSES[name], window_size=window)

    #: The classes seen so far (classification; a class default: older snapshots lack it).
    classes: frozenset = frozenset()
    #: The last ``engine.rolling_window`` labels and their counts (classification): the share of
    #: the most frequent class, the score of a model that always names it.
    recent_labels: deque | None = None
    recent_label_counts: dict[Any, int] | None = None
    #: Every label's count so far (bounded by engine.max_classes).
    label_counts: dict[Any, int] | None = None

    def _count_label(self, y: Any) -> None:
        recent, counts = self.recent_labels, self.recent_label_counts
        if recent is None or counts is None:
            recent = self.recent_labels = deque(maxlen=max(1, self.config.engine.rolling_window))
            counts = self.recent_label_counts = {}
        if len(recent) == recent.maxlen:
            old = recent[0]
            counts[old] -= 1
        recent.append(y)
        counts[y] = counts.get(y, 0) + 1
        totals = self.label_counts
        if totals is None:
            totals = self.label_counts = {}
        totals[y] = totals.get(y, 0) + 1

    def _beats_majority_class(self) -> bool:
        """The model does clearly better than always naming the most frequent label: its
        rolling accuracy beats the recent majority share by two standard errors, and over all
        labels so far it avoids at least MIN_KAPPA_M of the majority class's errors (kappa-M; a
        model that never learned the concept passes the rolling test now and then by chance over
        a long stream). ``True`` for regression, another metric, or before there is a window."""
        recent, counts = self.recent_labels, self.recent_label_counts
        if self.metric_name != "accuracy" or self.rolling is None or not recent or not counts:
            return True
        n = len(recent)
        if n < (recent.maxlen or 0):
            return True
        share = max(counts.values()) / n
        if float(self.rolling.get()) <= share + 2.0 * math.sqrt(share * (1.0 - share) / n):
            return False
        totals = self.label_counts
        if not totals:
            return True
        share = max(totals.values()) / sum(totals.values())
        if share >= 1.0:
            return True
        # Kappa-M (Bifet et al. 2015): the share of the majority class's errors the model avoids.
        return (float(self.metric.get()) - share) / (1.0 - share) >= MIN_KAPPA_M

    def _check_label(self, y: Any) -> None:
        if self.task is None:
            task, why = infer_task(y)
            self._set_task(task, y)
            self.task_reason = f"inferred from {why}"
            if task == "classification":
                self.classes = frozenset((y,))
            return
        kind = type(y)  # exact types: validation already allowed only bool, int, float, str
        if self.binary is None and self.task == "classification" and kind is not float:
            self.binary = kind is bool
        if self.task == "regression":
            if kind is bool or kind is str:
                raise InvalidRecord("bad_label", f"regression needs a numeric label, got {y!r}")
        elif kind is float:
            raise InvalidRecord(
                "bad_label", f"classification needs a boolean, string or integer label, got {y!r}"
            )
        elif self.binary and kind is not bool:
            raise InvalidRecord("bad_label", f"this model was built for boolean labels, got {y!r}")
        elif y not in self.classes:
            limit = self.config.engine.max_classes
            if len(self.classes) >= limit:
                raise InvalidRecord(
                    "too_many_classes",
                    f"label {y!r} would be class {len(self.classes) + 1:,}: this model learns at "
                    f"most engine.max_classes = {limit:,} (memory stays bounded)",
                )
            self.classes = self.classes | {y}

    def _metric_now(self) -> dict[str, Any] | None:
        """The partition's running prequential metric as this prediction leaves (labels scored
        so far; ``None`` before the first): the one place a follower of the output topics (the
        dashboard) can read it over time, since labels never reach an output record."""
        labels = self.counters["labelled"]
        if not labels or self.metric is None:
            return None
        rolling = self.rolling.get() if self.rolling is not None else None
        return {
            "name": self.metric_name,
            "value": _finite(self.metric.get()),
            "rolling": None if rolling is None else _finite(rolling),
            "labels": labels,
        }


class RollingAccuracy:
    """River's ``Rolling(Accuracy)``, the same values, at a fraction of the cost per label: the
    hits of the last ``window_size`` labels and their count (River reverts and updates a
    confusion matrix per label: 0.18x of a bare River loop's time, measured)."""

    __slots__ = ("hits", "window", "window_size")

    def __init__(self, window_size: int) -> None:
        self.window_size = window_size
        self.window: deque[bool] = deque(maxlen=window_size)
        self.hits = 0

    def update(self, y_true: Any, y_pred: Any) -> None:
        window = self.window
        if len(window) == self.window_size:
            self.hits -= window[0]
        hit = y_true == y_pred
        window.append(hit)
        self.hits += hit

    def get(self) -> float:
        return self.hits / len(self.window) if self.window else 0.0

    def update_each(self, hits: list[bool]) -> list[float]:
        """:meth:`update` with each of ``hits`` (``y_true == y_pred``) in turn; what
        :meth:`get` gave before each (a micro-batch's records carry it)."""
        window, size, total = self.window, self.window_size, self.hits
        before = []
        for hit in hits:
            before.append(total / len(window) if window else 0.0)
            if len(window) == size:
                total -= window[0]
            window.append(hit)
            total += hit
        self.hits = total
        return before


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
