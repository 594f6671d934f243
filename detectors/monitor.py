"""``SignalMonitor``: one drift detector (plus an optional warning detector) on one signal.

It turns River's ``drift_detected`` flags into debounced alerts with evidence:

* ``warning``: the more sensitive detector fired, or the drift detector did and its alarm waits
  for confirmation (no significance check: a warning starts a challenger, it is not a claim that
  anything changed). With a confirmation window, the warning detector's alarm is tested too;
* ``drift``: the drift detector fired, the change goes the watched way, and over the
  ``confirm_events`` values after the alarm it is large (``min_effect``) and unlikely under no
  change (the ``ert`` budget): see :mod:`driftline.detectors.effect`. An alarm that fails is dropped and
  counted in ``not_significant``;
* ``recovered``: ``recovery_events`` updates passed after a drift with no new alarm.

An alarm whose window moved the watched way but not enough is tested again on the next window
(``MAX_RETESTS``): a slow change is confirmed as it grows.

``direction="up"`` watches only for increases (an error rate). ADWIN fires on any change of the
mean, also when the error *falls* (a fresh model that learns): such a change is not a drift and
never triggers an action, it only ends an active alarm early as ``recovered``.

>>> import random
>>> rng = random.Random(1)
>>> mon = SignalMonitor("error", "adwin", {}, direction="up", binary=True, min_effect=0.2,
...                     ert=1_000_000, confirm_events=200)
>>> calm = [float(rng.random() < 0.1) for _ in range(2000)]
>>> worse = [float(rng.random() < 0.3) for _ in range(2000)]
>>> alerts = [a for i, v in enumerate(calm + worse) if (a := mon.update(v, i))]
>>> [(a["kind"], a["index"]) for a in alerts]
[('warning', 2047), ('drift', 2247), ('recovered', 3247)]
>>> drift = alerts[1]
>>> drift["first_index"], round(drift["effect"]["before"], 2), round(drift["effect"]["after"], 2)
(2047, 0.11, 0.28)
>>> round(drift["effect"]["d"], 2)
0.55
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from river import base

from driftline.detectors.effect import Reference, z_threshold
from driftline.detectors.registry import build_detector, warning_params

Direction = Literal["up", "down", "both"]

#: An alarm whose confirmation window moved the watched way (z at least RETEST_Z) but not enough
#: is tested again on the next window, up to MAX_RETESTS times: a gradual change is confirmed
#: as it grows instead of waiting for the detector to fire again from scratch.
RETEST_Z = 1.0
MAX_RETESTS = 4


class SignalMonitor:
    """Watch one numeric signal; ``update`` returns an alert dict or ``None``.

    ``rebase_on_recovery``: when the alarm ends, the reference restarts from the recent values
    (for a model's error, whose level after a drift is a transient while the model adapts)."""

    #: A class default: monitors restored from older snapshots lack the attribute.
    rebase_on_recovery = False

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
        min_effect: float = 0.0,
        ert: float = 0.0,
        confirm_events: int = 0,
        binary: bool = False,
        rebase_on_recovery: bool = False,
    ) -> None:
        self.signal = signal
        self.rebase_on_recovery = rebase_on_recovery
        self.kind = kind
        self.direction = direction
        self.cooldown = cooldown
        self.recovery_events = recovery_events
        self.min_effect = min_effect
        self.confirm_events = confirm_events
        self.binary = binary
        # No budget (ert 0) means no significance test: the effect size alone decides.
        self.z_min = (
            z_threshold(ert, max(1, confirm_events), two_sided=direction == "both") if ert else 0.0
        )
        self._params = dict(params)
        self._warning_params = (
            warning_params(kind, params, warning_overrides or {}) if warning else None
        )
        self._recent: deque[float] = deque(maxlen=recent_window)
        self.alarm_active = False
        self.warning_active = False
        self.not_significant = 0  # alarms of the detector that were too small or too likely
        self._last_alert_at: dict[str, int] = {}
        #: A fixed reference set by the owner (a feature's reference window); ``None``: the
        #: values seen since the last reset or confirmed drift.
        self.fixed_reference: Reference | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the past (after the model was replaced: its old errors mean nothing now)."""
        self.detector: base.DriftDetector = build_detector(self.kind, self._params)
        self.warner: base.DriftDetector | None = (
            build_detector(self.kind, self._warning_params)
            if self._warning_params is not None
            else None
        )
        self.reference = Reference()
        self._recent.clear()
        self._quiet_since_alarm = 0
        self.warning_active = False
        self._since_warning = 0
        self._candidate: dict[str, Any] | None = None

    # ------------------------------------------------------------------ evidence and effect

    def _reference(self) -> Reference:
        return self.reference if self.fixed_reference is None else self.fixed_reference

    def _evidence(self) -> dict[str, float | int]:
        ref = self._reference()
        recent = len(self._recent)
        return {
            "before": ref.mean if ref.n else float("nan"),
            "after": sum(self._recent) / recent if recent else float("nan"),
            "n_before": ref.n,
            "n_after": recent,
        }

    def _goes_watched_way(self, change: float) -> bool:
        if self.direction == "both":
            return True
        return change > 0 if self.direction == "up" else change < 0

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

    # ------------------------------------------------------------------ the per-value step

    def update(self, value: float, index: int) -> dict[str, Any] | None:
        # Runs for every value of every signal (several per event): attributes read once.
        self._recent.append(value)
        warner = self.warner
        if warner is not None:
            warner.update(value)
        detector = self.detector
        detector.update(value)
        candidate = self._candidate
        if candidate is not None:
            candidate["n"] += 1
            candidate["sum"] += value
            candidate["sumsq"] += value * value
            if candidate["n"] >= self.confirm_events:
                return self._decide(candidate, index)
        elif self.fixed_reference is None:
            # Reference.add written out (same operations, same bits): one call less per value.
            ref = self.reference
            n = ref.n = ref.n + 1
            mean = ref.mean
            delta = value - mean
            mean = ref.mean = mean + delta / n
            ref.m2 += delta * (value - mean)

        if candidate is None and detector.drift_detected:
            evidence = self._evidence()
            change = evidence["after"] - evidence["before"]
            if self._goes_watched_way(change):
                return self._open_candidate(index, evidence)
            if self.alarm_active:
                # The watched signal went back the good way: the alarm is over.
                self._recover()
                return self._alert("recovered", index, evidence)
            return None

        if self.alarm_active:
            self._quiet_since_alarm += 1
            if self._quiet_since_alarm >= self.recovery_events:
                self._recover()
                return self._alert("recovered", index, self._evidence())
        if self.warning_active:
            # A warning that never became a drift lapses, so the next change can warn again.
            self._since_warning += 1
            if self._since_warning >= self.recovery_events:
                self.warning_active = False

        if warner is not None and not self.warning_active and warner.drift_detected:
            evidence = self._evidence()
            if self._goes_watched_way(evidence["after"] - evidence["before"]):
                if self.confirm_events > 0 and candidate is None and not self.alarm_active:
                    # The confirmation test carries the false-alarm budget, so the more
                    # sensitive detector may propose a change too: a small, lasting rise that
                    # the drift detector is slow to see is then tested all the same.
                    return self._open_candidate(index, evidence)
                self.warning_active = True
                self._since_warning = 0
                return self._alert("warning", index, evidence)
        return None

    def _recover(self) -> None:
        self.alarm_active = False
        if self.rebase_on_recovery and self.fixed_reference is None:
            # The reference since the drift holds the transient of a model that adapts (its
            # error is high at first, then settles). The settled level starts from the recent
            # values, never from nothing: the next alarm is measured against it.
            self.reference = Reference()
            for value in self._recent:
                self.reference.add(value)

    def _open_candidate(self, index: int, evidence: dict[str, Any]) -> dict[str, Any] | None:
        candidate = {"first_index": index, "evidence": evidence, "n": 0, "sum": 0.0, "sumsq": 0.0}
        if self.confirm_events <= 0:
            return self._decide(candidate, index)
        self._candidate = candidate
        if self.warner is not None and not self.alarm_active:
            # An alarm waiting for confirmation is at least a warning: a challenger can start
            # learning now rather than after the confirmation window.
            self.warning_active = True
            self._since_warning = 0
            return self._alert("warning", index, evidence)
        return None

    @property
    def pending(self) -> bool:
        """An alarm of the detector waits for its confirmation window."""
        return self._candidate is not None

    def confirm_by_test(
        self, index: int, first_index: int, after_mean: float, after_n: int, test: str
    ) -> dict[str, Any] | None:
        """A drift confirmed by another significance test on this signal: a fresh model started
        at a warning beat the current one on the same labels (the paired-learners check). The
        signal moved from its reference to ``after_mean`` over ``after_n`` values."""
        candidate = self._candidate
        self._candidate = None
        effect = self._reference().effect(after_mean, after_n, binary=self.binary)
        d = effect["d"] if self.direction != "down" else -effect["d"]
        if (abs(d) if self.direction == "both" else d) < self.min_effect:
            # The new model is better, but this signal did not move enough to call it a drift.
            self.not_significant += 1
            return None
        self.alarm_active = True
        self._quiet_since_alarm = 0
        evidence: dict[str, Any] = dict(candidate["evidence"] if candidate else self._evidence())
        evidence["confirmed_by"] = test
        alert = self._alert("drift", index, evidence)
        if alert is not None:
            alert["first_index"] = candidate["first_index"] if candidate else first_index
            alert["effect"] = effect
        return alert

    def _decide(
        self, candidate: dict[str, Any], index: int, *, statistical: bool = True
    ) -> dict[str, Any] | None:
        """Confirm or drop a pending alarm on the values that came after it."""
        self._candidate = None
        n = candidate["n"]
        if n:
            after = candidate["sum"] / n
        else:  # no confirmation window: the detector's recent values
            after, n = candidate["evidence"]["after"], candidate["evidence"]["n_after"]
        ref = self._reference()
        effect = ref.effect(after, n, binary=self.binary)
        d, z = effect["d"], effect["z"]
        if self.direction == "both":
            d, z = abs(d), abs(z)
        elif self.direction == "down":
            d, z = -d, -z
        if d < self.min_effect or (statistical and z < self.z_min):
            retests = candidate.get("retests", 0)
            if statistical and z >= RETEST_Z and retests < MAX_RETESTS:
                # Moved the watched way, not yet enough: a slow change is still under way. The
                # next window is tested on its own; windows never overlap, so one test per
                # confirm_events values still holds and so does the ert budget.
                candidate.update(n=0, sum=0.0, sumsq=0.0, retests=retests + 1)
                self._candidate = candidate
                return None
            self.not_significant += 1
            return None
        self.alarm_active = True
        self._quiet_since_alarm = 0
        alert = self._alert("drift", index, dict(candidate["evidence"]))
        if alert is not None:
            alert["first_index"] = candidate["first_index"]
            alert["effect"] = effect
        if self.fixed_reference is None:
            # The next alarm compares against the new regime, not the same change twice: the
            # values after the alarm, or (with no confirmation window) the detector's recent ones.
            if candidate["n"] > 1:
                m2 = max(0.0, candidate["sumsq"] - n * after * after)
                self.reference = Reference.of(n, after, m2)
            else:
                self.reference = Reference()
                for value in self._recent:
                    self.reference.add(value)
        return alert
