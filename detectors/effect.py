"""Practical significance and a false-alarm budget for a detector's alarm.

A River detector (ADWIN, Page-Hinkley) says a signal's mean *changed*; on a long stream it says so
for shifts far too small to matter. An alarm therefore only becomes a drift when the change is also
large and unlikely under no change, judged on the ``confirm_events`` values that follow the alarm:

* **effect size**: the standardized mean shift ``d = (mean_after - mean_ref) / std_ref`` (Cohen's
  d against the reference; for a 0/1 signal such as an error, ``std_ref = sqrt(p (1 - p))``). It
  must reach ``min_effect``.
* **false-alarm budget** ``ert``: the expected number of events between false alarms on a
  stationary stream (as Alibi Detect's online detectors state it). A signal tests at most once per
  ``confirm_events`` events (one pending alarm at a time), so a per-test false-alarm probability
  ``p = confirm_events / ert`` keeps the expected run time at least ``ert``. The threshold on the
  shift comes from that ``p`` by a bound, not by simulation: the normal approximation of the
  difference of two window means, ``|d| >= z(p) * sqrt(1/n_after + 1/n_ref)``.

>>> z = z_threshold(ert=1_000_000, confirm_events=200, two_sided=False)
>>> round(z, 2)
3.54
>>> ref = Reference(); [ref.add(v) for v in [0.0] * 900 + [1.0] * 100]  # doctest: +ELLIPSIS
[...]
>>> effect = ref.effect(after_mean=0.3, after_n=200, binary=True)
>>> round(effect["d"], 2), round(effect["z"], 1)
(0.67, 8.6)
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

#: A 0/1 signal with a reference rate near 0 or 1 would make any blip a huge shift: the rate
#: used for its standard deviation is kept inside [P_FLOOR, 1 - P_FLOOR].
P_FLOOR = 0.02


def z_threshold(ert: float, confirm_events: int, *, two_sided: bool) -> float:
    """The z a shift must reach so that false alarms come at most once per ``ert`` events."""
    p = min(0.5, max(1e-15, confirm_events / ert))
    return NormalDist().inv_cdf(1.0 - (p / 2 if two_sided else p))


class Reference:
    """Running mean and variance (Welford): a signal's reference values, a feature's reference
    window, the guard's accepted values. The project's one running-variance accumulator."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    @classmethod
    def of(cls, n: int, mean: float, m2: float) -> Reference:
        """A reference with these moments (``m2``: the sum of squared deviations)."""
        ref = cls()
        ref.n, ref.mean, ref.m2 = n, mean, m2
        return ref

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def std(self, binary: bool) -> float:
        if binary:
            p = min(1.0 - P_FLOOR, max(P_FLOOR, self.mean))
            return math.sqrt(p * (1.0 - p))
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def effect(self, after_mean: float, after_n: int, *, binary: bool) -> dict[str, Any]:
        """The shift of ``after_mean`` (over ``after_n`` values) from this reference."""
        std = self.std(binary) or 1e-9
        d = (after_mean - self.mean) / std
        spread = math.sqrt(1.0 / max(1, after_n) + 1.0 / max(1, self.n))
        return {
            "measure": "standardized_mean_shift",
            "d": d,
            "z": d / spread,
            "before": self.mean,
            "after": after_mean,
            "reference_std": std,
            "n_before": self.n,
            "n_after": after_n,
        }
