"""Data-drift monitors: a ``SignalMonitor`` per numeric feature, on reference-scaled values.

Each feature's first ``reference_size`` values fix a reference mean and standard deviation; later
values are fed to the detector as ``z = (v - mean) / std``, clipped to ``[-CLIP, CLIP]`` and mapped
onto ``[0, 1]``. One detector threshold then fits every feature, whatever its unit, and ADWIN's
bound (made for values in ``[0, 1]``) holds. An alarm becomes a drift only when the feature's mean
moved by at least ``min_effect`` reference standard deviations within the ``ert`` budget
(:mod:`driftline.detectors.effect`); the effect is reported in the feature's own unit. After a drift the
reference is taken again, so the next alert measures a change from the new regime, not the same
change twice.

>>> import random
>>> rng = random.Random(3)
>>> mon = ScaledMonitor("feature:temp", "adwin", {}, reference_size=500, min_effect=0.5,
...                     ert=1_000_000, confirm_events=200)
>>> values = [rng.gauss(20, 2) for _ in range(3000)] + [rng.gauss(23, 2) for _ in range(3000)]
>>> alerts = [a for i, v in enumerate(values) if (a := mon.update(v, i))]
>>> [(a["kind"], a["first_index"], a["index"]) for a in alerts if a["kind"] == "drift"]
[('drift', 3059, 3259)]
>>> effect = [a for a in alerts if a["kind"] == "drift"][0]["effect"]
>>> round(effect["before"], 1), round(effect["after"], 1), round(effect["d"], 1)
(19.9, 23.1, 1.6)
"""

from __future__ import annotations

from typing import Any

from driftline.detectors.effect import Reference
from driftline.detectors.monitor import SignalMonitor

CLIP = 4.0


class ScaledMonitor:
    """A :class:`SignalMonitor` fed with values scaled by a frozen reference window."""

    def __init__(
        self,
        signal: str,
        kind: str,
        params: dict[str, Any],
        *,
        reference_size: int = 500,
        **kw: Any,
    ) -> None:
        self.reference_size = max(2, reference_size)
        self.monitor = SignalMonitor(signal, kind, params, **kw)
        self.monitor.fixed_reference = None
        self._start_reference()

    @property
    def alarm_active(self) -> bool:
        return self.monitor.alarm_active

    @property
    def not_significant(self) -> int:
        return self.monitor.not_significant

    @property
    def pending(self) -> bool:
        return self.monitor.pending

    def confirm_by_test(
        self, index: int, first_index: int, after_mean: float, after_n: int, test: str
    ) -> dict[str, Any] | None:
        if not self._scale:
            return None  # no reference yet to measure a change against
        scaled = (after_mean - self._ref.mean) * self._scale + 0.5
        return self._finish(self.monitor.confirm_by_test(index, first_index, scaled, after_n, test))

    def reset(self) -> None:
        """Forget the past, the reference included."""
        self._start_reference()
        self.monitor.reset()
        self.monitor.fixed_reference = None

    def _start_reference(self) -> None:
        self._ref = Reference()
        self._scale = 0.0  # 0 while the reference is still being collected

    def update(self, value: float, index: int) -> dict[str, Any] | None:
        if not self._scale:
            ref = self._ref
            ref.add(value)
            if ref.n >= self.reference_size:
                std = ref.std(binary=False)
                # A constant reference (std 0) still has to detect a later change.
                self._scale = 1.0 / (2 * CLIP * (std or 1e-9))
                # In the scaled space the reference is mean 0.5, std 1 / (2 CLIP).
                self.monitor.fixed_reference = Reference.of(
                    ref.n, 0.5, (ref.n - 1) / (2 * CLIP) ** 2
                )
            return None
        z = (value - self._ref.mean) * self._scale + 0.5
        return self._finish(self.monitor.update(0.0 if z < 0.0 else 1.0 if z > 1.0 else z, index))

    def _finish(self, alert: dict[str, Any] | None) -> dict[str, Any] | None:
        if alert is not None:
            std = 1.0 / (2 * CLIP * self._scale)
            alert["evidence"]["reference_mean"] = self._ref.mean
            alert["evidence"]["reference_std"] = std
            effect = alert.get("effect")
            if effect is not None:
                # Back to the feature's own unit: a person reads 23.0 degrees, not 0.59.
                effect["before"] = self._ref.mean
                effect["after"] = self._ref.mean + (effect["after"] - 0.5) / self._scale
                effect["reference_std"] = std
            if alert["kind"] == "drift":
                self.reset()
        return alert


class FeatureMonitors:
    """One :class:`ScaledMonitor` per numeric feature, created on first sight, bounded in number."""

    def __init__(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        features: tuple[str, ...] = (),
        max_features: int = 100,
        reference_size: int = 500,
        **kw: Any,
    ) -> None:
        self.kind = kind
        self.params = params
        self.only = frozenset(features)
        self.max_features = max_features
        self.reference_size = reference_size
        self.kw = kw
        self.monitors: dict[str, ScaledMonitor] = {}

    @property
    def not_significant(self) -> int:
        return sum(mon.not_significant for mon in self.monitors.values())

    @property
    def pending(self) -> bool:
        """An alarm on some feature waits for its confirmation window."""
        return any(mon.pending for mon in self.monitors.values())

    def update(self, x: dict[str, Any], index: int) -> list[dict[str, Any]]:
        alerts = []
        monitors = self.monitors
        for name, value in x.items():
            kind = type(value)
            if kind is not float and kind is not int:
                continue  # strings and booleans have no mean to drift
            mon = monitors.get(name)
            if mon is None:
                if (self.only and name not in self.only) or len(monitors) >= self.max_features:
                    continue
                mon = monitors[name] = ScaledMonitor(
                    f"feature:{name}",
                    self.kind,
                    self.params,
                    reference_size=self.reference_size,
                    **self.kw,
                )
            scale = mon._scale
            if scale:
                # ScaledMonitor.update past its reference window, written out: this runs for
                # every numeric feature of every event, and the extra call was a fifth of it.
                z = (value - mon._ref.mean) * scale + 0.5
                alert = mon.monitor.update(0.0 if z < 0.0 else 1.0 if z > 1.0 else z, index)
                if alert is None:
                    continue
                alert = mon._finish(alert)
            else:
                alert = mon.update(value, index)
            if alert is not None:
                alerts.append(alert)
        return alerts
