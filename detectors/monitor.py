"""``SignalMonitor``: one drift detector (plus an optional warning detector) on one signal.

It turns River's ``drift_detected`` flags into debounced alerts with evidence:

* ``warning``: the more sensitive detector fired;
* ``drift``: the drift detector fired and the change goes the watched way;
* ``recovered``: ``recovery_events`` updates passed after a drift with no new alarm.

``direction="up"`` watches only for increases (an error rate). ADWIN fires on any change of the
mean, also when the error *falls* (a fresh model that learns): such a change is not a drift and
never triggers an action, it only ends an active alarm early as ``recovered``.

>>> import random
>>> rng = random.Random(1)
>>> mon = SignalMonitor("error", "adwin", {}, direction="up")
>>> calm = [float(rng.random() < 0.1) for _ in range(2000)]
>>> worse = [float(rng.random() < 0.3) for _ in range(2000)]
>>> stream = calm + worse
>>> alerts = [a for i, v in enumerate(stream) if (a := mon.update(v, i))]
>>> [(a["kind"], a["index"]) for a in alerts]
[('warning', 2047), ('drift', 2143), ('recovered', 3143)]
>>> round(alerts[1]["evidence"]["before"], 2), round(alerts[1]["evidence"]["after"], 2)
(0.11, 0.25)
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from river import base

from detectors.registry import build_detector, warning_params

Direction = Literal["up", "down", "both"]


class SignalMonitor:
    """Watch one numeric signal; ``update`` returns an alert dict or ``None``."""

    def __init__(
        self,
        signal: str,
        kind: str,
        params: dict[str, Any],
        *,
        warning: bool = True,
        warning_overrides: dict[str, Any] | None = None,
        direction: Direction = "both",
        cooldown: int = 200,
        recovery_events: int = 1000,
        recent_window: int = 100,
    ) -> None:
        self.signal = signal
        self.kind = kind
        self.direction = direction
        self.cooldown = cooldown
        self.recovery_events = recovery_events
        self._params = dict(params)
        self._warning_params = (
            warning_params(kind, params, warning_overrides or {}) if warning else None
        )
        self._recent: deque[float] = deque(maxlen=recent_window)
        self.alarm_active = False
        self.warning_active = False
        self._last_alert_at: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the past (after the model was replaced: its old errors mean nothing now)."""
        self.detector: base.DriftDetector = build_detector(self.kind, self._params)
        self.warner: base.DriftDetector | None = (
            build_detector(self.kind, self._warning_params)
            if self._warning_params is not None
            else None
        )
        self._sum = 0.0
        self._n = 0
        self._recent.clear()
        self._quiet_since_alarm = 0
        self.warning_active = False
        self._since_warning = 0

    def _evidence(self) -> dict[str, float | int]:
        recent = len(self._recent)
        recent_sum = sum(self._recent)
        older = self._n - recent
        before = (self._sum - recent_sum) / older if older else float("nan")
        return {
            "before": before,
            "after": recent_sum / recent if recent else float("nan"),
            "n_before": older,
            "n_after": recent,
        }

    def _goes_watched_way(self, evidence: dict[str, float | int]) -> bool:
        if self.direction == "both":
            return True
        rising = evidence["after"] > evidence["before"]
        return rising if self.direction == "up" else not rising

    def _alert(self, kind: str, index: int, evidence: dict[str, Any]) -> dict[str, Any] | None:
        last = self._last_alert_at.get(kind)
        if last is not None and index - last < self.cooldown:
            return None  # debounced: one change, one alert
        self._last_alert_at[kind] = index
        return {
            "kind": kind,
            "detector": self.kind,
            "signal": self.signal,
            "index": index,
            "evidence": evidence,
        }

    def update(self, value: float, index: int) -> dict[str, Any] | None:
        self._sum += value
        self._n += 1
        self._recent.append(value)
        if self.warner is not None:
            self.warner.update(value)
        self.detector.update(value)

        if self.detector.drift_detected:
            evidence = self._evidence()
            # Restart the evidence window: the next alarm compares against the new regime.
            self._sum, self._n = sum(self._recent), len(self._recent)
            self.warning_active = False
            if self._goes_watched_way(evidence):
                self.alarm_active = True
                self._quiet_since_alarm = 0
                return self._alert("drift", index, evidence)
            if self.alarm_active:
                # The watched signal went back the good way: the alarm is over.
                self.alarm_active = False
                return self._alert("recovered", index, evidence)
            return None

        if self.alarm_active:
            self._quiet_since_alarm += 1
            if self._quiet_since_alarm >= self.recovery_events:
                self.alarm_active = False
                return self._alert("recovered", index, self._evidence())
        if self.warning_active:
            # A warning that never became a drift lapses, so the next change can warn again.
            self._since_warning += 1
            if self._since_warning >= self.recovery_events:
                self.warning_active = False

        if self.warner is not None and self.warner.drift_detected and not self.warning_active:
            evidence = self._evidence()
            if self._goes_watched_way(evidence):
                self.warning_active = True
                self._since_warning = 0
                return self._alert("warning", index, evidence)
        return None
