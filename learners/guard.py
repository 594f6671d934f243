"""``OutlierGuard``: inputs that look like outliers or poison are predicted but not learned from.

Per numeric feature (and the label, for regression) it keeps a running mean and variance of the
values it *accepted*: a flagged value never moves the statistics, so a burst of poison cannot widen
the bounds that would catch it. After ``warmup`` accepted events, a value more than ``z_threshold``
standard deviations from its mean flags the event. A feature with no spread yet (new, or constant so
far) is not judged: it learns its scale first. More than ``rebase_after`` flagged events in a row are
a new regime (data drift, a flag that switched on), not a burst of poison: the guard learns the
offending inputs' scale afresh rather than refusing them forever.

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

from detectors.effect import Reference

MIN_COUNT = 30
RELATIVE_STD_FLOOR = 1e-3


class _Running(Reference):
    __slots__ = ()

    def reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def z(self, value: float) -> float:
        """Distance from the mean in standard deviations; 0 while there is too little to judge
        by (fewer than MIN_COUNT values, or no spread yet). The deviation has a floor relative to
        the mean, so one small step of an input that was constant is not an outlier."""
        if self.n < MIN_COUNT or self.m2 == 0.0:
            return 0.0
        std = math.sqrt(self.m2 / (self.n - 1))
        floor = RELATIVE_STD_FLOOR * max(1.0, abs(self.mean))
        return abs(value - self.mean) / max(std, floor)


class OutlierGuard:
    """Flag inputs far outside what was accepted so far; ``check`` returns a reason or ``None``."""

    def __init__(
        self, z_threshold: float = 8.0, warmup: int = 200, rebase_after: int = 200
    ) -> None:
        self.z_threshold = z_threshold
        self.warmup = warmup
        self.rebase_after = rebase_after
        self.accepted = 0
        self.flagged = 0
        self.flag_run = 0  # events flagged in a row
        self.stats: dict[str, _Running] = {}
        self.label_stats = _Running()

    def _outliers(
        self, numeric: list[tuple[str, float]], y: float | None, first_only: bool
    ) -> list[tuple[str, float, _Running]]:
        found = []
        threshold = self.z_threshold
        for name, value in numeric:
            stats = self.stats.get(name)
            if stats is not None and (z := stats.z(value)) > threshold:
                found.append((f"feature {name}", z, stats))
                if first_only:
                    return found
        if y is not None and (z := self.label_stats.z(y)) > threshold:
            found.append(("label", z, self.label_stats))
        return found

    def check(self, x: dict[str, Any], y: float | None = None) -> str | None:
        """Check an event: the reason it is flagged, or ``None`` (accepted: statistics updated)."""
        numeric = [(name, v) for name, v in x.items() if type(v) is float or type(v) is int]
        if self.accepted >= self.warmup and (found := self._outliers(numeric, y, True)):
            self.flag_run += 1
            if self.flag_run <= self.rebase_after:
                self.flagged += 1
                what, z, _ = found[0]
                return f"{what} is {z:.1f} standard deviations from its mean"
            # Flagged event after event: a new regime (a shifted sensor, a flag that switched
            # on), not a burst of poison. Learn those inputs' scale afresh, accept this event.
            for _, _, offending in self._outliers(numeric, y, False):
                offending.reset()
        self.flag_run = 0
        self.accepted += 1
        stats_by_name = self.stats
        for name, value in numeric:
            running = stats_by_name.get(name)
            if running is None:
                running = stats_by_name[name] = _Running()
            running.add(value)
        if y is not None:
            self.label_stats.add(y)
        return None
