"""``OutlierGuard``: inputs that look like outliers or poison are predicted but not learned from.

Per numeric feature (and the label, for regression) it keeps a running mean and variance of the
values it *accepted*: a flagged value never moves the statistics, so a burst of poison cannot widen
the bounds that would catch it. After ``warmup`` accepted events, a value more than ``z_threshold``
standard deviations from its mean flags the event, as does a feature never seen during warm-up.

>>> guard = OutlierGuard(z_threshold=6.0, warmup=100)
>>> for i in range(200):
...     guard.check({"t": 20.0 + (i % 7) * 0.5})
>>> guard.check({"t": 21.0}) is None
True
>>> guard.check({"t": 9000.0})
'feature t is 8985.5 standard deviations from its mean'
"""

from __future__ import annotations

import math
from typing import Any


class _Running:
    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def z(self, value: float) -> float:
        std = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        return (
            abs(value - self.mean) / std if std > 0 else (0.0 if value == self.mean else math.inf)
        )


class OutlierGuard:
    """Flag inputs far outside what was accepted so far; ``check`` returns a reason or ``None``."""

    def __init__(self, z_threshold: float = 8.0, warmup: int = 200) -> None:
        self.z_threshold = z_threshold
        self.warmup = warmup
        self.accepted = 0
        self.flagged = 0
        self.stats: dict[str, _Running] = {}
        self.label_stats = _Running()

    def check(self, x: dict[str, Any], y: float | None = None) -> str | None:
        """Check an event; accepted events update the statistics."""
        numeric = [(name, v) for name, v in x.items() if type(v) is float or type(v) is int]
        if self.accepted >= self.warmup:
            for name, value in numeric:
                stats = self.stats.get(name)
                if stats is None or stats.n < 2:
                    continue  # a new feature: learn its scale before judging it
                z = stats.z(value)
                if z > self.z_threshold:
                    self.flagged += 1
                    return f"feature {name} is {z:.1f} standard deviations from its mean"
            if y is not None and self.label_stats.n > 1:
                z = self.label_stats.z(y)
                if z > self.z_threshold:
                    self.flagged += 1
                    return f"label is {z:.1f} standard deviations from its mean"
        self.accepted += 1
        stats_by_name = self.stats
        for name, value in numeric:
            stats = stats_by_name.get(name)
            if stats is None:
                stats = stats_by_name[name] = _Running()
            stats.add(value)
        if y is not None:
            self.label_stats.add(y)
        return None
