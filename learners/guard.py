"""``OutlierGuard``: inputs that look like outliers or poison are predicted but not learned from.

Per numeric feature (and the label, for regression) it keeps a running mean and variance, and the
range, of the values it *accepted*: a flagged value never moves them, so a burst of poison cannot
widen the bounds that would catch it. After ``warmup`` accepted events, a value more than
``z_threshold`` standard deviations from its mean, and outside the range of values accepted so
far, flags the event. A feature with no spread yet (new, or constant so far) is not judged: it
learns its scale first; a value like one already accepted (a 0/1 flag that switches on) is not an
outlier.

**A new regime is accepted only after a duration a person configured**: a run of ``rebase_after``
flagged events (default 10,000, far longer than a burst; the run survives accepted events up to
``RUN_TOLERANCE`` of it, as a shifted regime's values near the bound are accepted now and then,
and the statistics do not move while it goes on). Then the guard learns the offending inputs'
scale afresh and accepts the events (a sensor recalibrated to other units, a feature whose
meaning changed). Anything shorter, or interleaved with ordinary events, is a burst: it is
predicted, counted and alerted on (the ``guard`` signal), never learned, and the events after it
are judged by the statistics from before it, so ordinary events are learned again at once. Labels are *not* taken as evidence
that a burst is a real regime: labels that agree with the current model say nothing about the
damage extreme inputs do to a model's scaling (a 1e6 with the label the model expected still
moves a StandardScaler's mean and variance by orders of magnitude), and a consistent poison
agrees with itself. A real change that the model should follow sooner is a drift for the data
and error monitors, or a shorter ``rebase_after``.

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

from driftline.detectors.effect import Reference

MIN_COUNT = 30
RELATIVE_STD_FLOOR = 1e-3
#: A run of flagged events survives accepted events up to this share of it (plus RUN_SLACK).
RUN_TOLERANCE = 0.1
RUN_SLACK = 1


class _Running(Reference):
    """Welford moments plus the range (``lo``, ``hi``) of the values accepted."""

    __slots__ = ("hi", "lo")

    def __init__(self) -> None:
        super().__init__()
        self.lo = math.inf
        self.hi = -math.inf

    def __setstate__(self, state: Any) -> None:
        # A snapshot taken before the range was kept: no range (every value judged by z).
        self.lo, self.hi = math.inf, -math.inf
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in (slots or {}).items():
            setattr(self, name, value)

    def reset(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def add(self, value: float) -> None:
        # Reference.add written out (the same operations in the same order, so the same bits):
        # the guard adds every numeric feature of every accepted event, and the call through
        # super() cost as much as the arithmetic.
        n = self.n + 1
        self.n = n
        mean = self.mean
        delta = value - mean
        mean += delta / n
        self.mean = mean
        self.m2 += delta * (value - mean)
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value

    def z(self, value: float) -> float:
        """Distance from the mean in standard deviations; 0 while there is too little to judge
        by (fewer than MIN_COUNT values, or no spread yet) and for a value within the range
        already accepted. The deviation has a floor relative to the mean, so one small step of
        an input that was constant is not an outlier."""
        if self.n < MIN_COUNT or self.m2 == 0.0 or self.lo <= value <= self.hi:
            return 0.0
        std = math.sqrt(self.m2 / (self.n - 1))
        floor = RELATIVE_STD_FLOOR * max(1.0, abs(self.mean))
        return abs(value - self.mean) / max(std, floor)


class OutlierGuard:
    """Flag inputs far outside what was accepted so far; ``check`` returns a reason or ``None``.

    At most ``max_features`` numeric features are tracked (first come): an event stream with
    ever-new feature names must not grow the guard without end; later names are not judged.
    """

    #: Defaults for a guard restored from a snapshot taken before these existed.
    max_features = 10_000
    rebases = 0
    run_accepted = 0

    def __init__(
        self,
        z_threshold: float = 6.0,
        warmup: int = 200,
        rebase_after: int = 10_000,
        max_features: int = 10_000,
    ) -> None:
        self.z_threshold = z_threshold
        self.warmup = warmup
        self.rebase_after = rebase_after
        self.max_features = max_features
        self.accepted = 0
        self.flagged = 0
        self.flag_run = 0  # events flagged in the current run (see check)
        self.run_accepted = 0  # events accepted during the current run
        self.rebases = 0  # new regimes accepted
        self.stats: dict[str, _Running] = {}
        self.label_stats = _Running()

    def _outliers(
        self, numeric: list[tuple[str, float]], y: float | None, first_only: bool
    ) -> list[tuple[str, float, _Running]]:
        found = []
        threshold = self.z_threshold
        stats_by_name = self.stats
        for name, value in numeric:
            stats = stats_by_name.get(name)
            # A value inside the accepted range has z 0 (see _Running.z): the common case,
            # decided here without the call (the threshold is > 0).
            if stats is None or stats.lo <= value <= stats.hi:
                continue
            if (z := stats.z(value)) > threshold:
                found.append((f"feature {name}", z, stats))
                if first_only:
                    return found
        if y is not None and (z := self.label_stats.z(y)) > threshold:
            found.append(("label", z, self.label_stats))
        return found

    def _accept_in_range(self, x: dict[str, Any]) -> bool:
        """The common case in one pass: every numeric feature already tracked and inside the
        range accepted so far (so none is an outlier, see :meth:`_outliers`): the event is
        accepted and its values added, and ``True``. Otherwise nothing changes, and ``False``:
        :meth:`check` judges the event the long way. (The guard runs for every event, and the
        long way builds a list and calls ``add`` per feature: more than half of its time.)"""
        stats_by_name = self.stats
        tracked = []
        for name, value in x.items():
            kind = type(value)
            if kind is not float and kind is not int:
                continue
            stats = stats_by_name.get(name)
            if stats is None or not stats.lo <= value <= stats.hi:
                return False
            tracked.append((stats, value))
        self.accepted += 1
        for stats, value in tracked:
            # _Running.add written out (the same operations in the same order, so the same
            # bits); the value is inside [lo, hi], which therefore stay.
            n = stats.n + 1
            stats.n = n
            mean = stats.mean
            delta = value - mean
            mean += delta / n
            stats.mean = mean
            stats.m2 += delta * (value - mean)
        return True

    def check(self, x: dict[str, Any], y: float | None = None) -> str | None:
        """Check an event: the reason it is flagged, or ``None`` (accepted)."""
        ordinary = y is None and self.accepted >= self.warmup and not self.flag_run
        if ordinary and self._accept_in_range(x):
            return None
        numeric = [(name, v) for name, v in x.items() if (t := type(v)) is float or t is int]
        if self.accepted >= self.warmup and (found := self._outliers(numeric, y, True)):
            self.flag_run += 1
            if self.flag_run <= self.rebase_after:
                self.flagged += 1
                what, z, _ = found[0]
                return f"{what} is {z:.1f} standard deviations from its mean"
            # Flagged (almost) event after event for as long as a person said a burst can last:
            # a new regime (a recalibrated sensor, a feature whose meaning changed), not a burst
            # of poison. Learn those inputs' scale afresh, accept this event.
            self.rebases += 1
            for _, _, offending in self._outliers(numeric, y, False):
                offending.reset()
            self.flag_run = self.run_accepted = 0
        elif self.flag_run:
            # A run of flags goes on through the odd accepted event (a shifted regime's values
            # near the threshold) and ends when accepted events are more than RUN_TOLERANCE of
            # it (an interleaved burst is not a regime). While it goes on, the statistics stay
            # as they were: accepted values near the bound must not creep it outwards.
            self.run_accepted += 1
            self.accepted += 1
            if self.run_accepted > RUN_TOLERANCE * self.flag_run + RUN_SLACK:
                self.flag_run = self.run_accepted = 0
            return None
        self.accepted += 1
        stats_by_name = self.stats
        for name, value in numeric:
            running = stats_by_name.get(name)
            if running is None:
                if len(stats_by_name) >= self.max_features:
                    continue
                running = stats_by_name[name] = _Running()
            running.add(value)
        if y is not None:
            self.label_stats.add(y)
        return None
