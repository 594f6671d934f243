"""``BaselineFallback``: what to predict when the model cannot be trusted.

The majority class for classification, the running mean for regression. It learns from every
labelled event, so it is warm long before a fresh model is.

>>> fb = BaselineFallback("classification")
>>> for y in ["a", "b", "b"]:
...     fb.learn(y)
>>> fb.predict()
('b', {'a': 0.333..., 'b': 0.666...})
>>> reg = BaselineFallback("regression")
>>> for y in [1.0, 2.0, 6.0]:
...     reg.learn(y)
>>> reg.predict()
(3.0, None)
"""

from __future__ import annotations

from typing import Any


class BaselineFallback:
    def __init__(self, task: str) -> None:
        self.task = task
        self.counts: dict[Any, int] = {}
        self.n = 0
        self.mean = 0.0

    def learn(self, y: Any) -> None:
        self.n += 1
        if self.task == "classification":
            self.counts[y] = self.counts.get(y, 0) + 1
        else:
            self.mean += (float(y) - self.mean) / self.n

    def learn_many(self, ys: list[Any]) -> None:
        """:meth:`learn` each label in turn (classification: one count per label, in a loop
        without a call per label)."""
        if self.task != "classification":
            for y in ys:
                self.learn(y)
            return
        counts = self.counts
        for y in ys:
            counts[y] = counts.get(y, 0) + 1
        self.n += len(ys)

    def predict(self) -> tuple[Any, dict[Any, float] | None]:
        if self.task != "classification":
            return (self.mean if self.n else None), None
        if not self.counts:
            return None, None
        proba = {label: count / self.n for label, count in self.counts.items()}
        return max(self.counts, key=self.counts.__getitem__), proba
