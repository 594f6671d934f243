"""What the engine does with a monitor's alert: the policy's action, the incident it belongs to, the
record a subscriber gets; and the promotion of a challenger that won its paired test.

A mixin of :class:`driftline.learners.engine.Engine` (kept apart so that the per-event loop and the alert
handling each fit on a screen); it holds no state of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from driftline.detectors import FeatureMonitors, IncidentTracker, PredictionMonitors
from driftline.learners.config import LearningConfig
from driftline.learners.outputs import Outputs
from driftline.learners.slices import SliceMonitors
from driftline.learners.slot import ModelSlot


def signal_family(signal: str) -> str:
    """``feature:temp`` belongs to ``features``, ``prediction:yes`` to ``prediction``,
    ``slice:region=east`` to ``slices``; the others are their own family."""
    if signal.startswith("feature:"):
        return "features"
    if signal.startswith("slice:"):
        return "slices"
    return "prediction" if signal.startswith("prediction:") else signal


class AlertActions:
    """Alert handling for :class:`driftline.learners.engine.Engine` (which sets every attribute below)."""

    config: LearningConfig
    partition: int | None
    slots: OrderedDict[Any, ModelSlot]
    outputs: Outputs
    counters: dict[str, int]
    alert_counts: dict[tuple[str, str, str], int]
    incidents: IncidentTracker
    prediction_monitor: PredictionMonitors | None
    features: FeatureMonitors | None
    slices: SliceMonitors | None
    index: int
    watermark: int
    clock_ms: float

    def _on_alert(
        self, alert: dict[str, Any], slot: ModelSlot | None, key: Any = None, *, act: bool = True
    ) -> None:
        """A monitor's alert: take the policy's action, then hand it to the incident tracker.

        A signal's own ``recovered`` only ends its alarm; subscribers get ``recovered`` when the
        whole incident closes (:meth:`_close_quiet_incident`)."""
        signal = alert["signal"]
        kind = alert["kind"]
        policy = self.config.policy
        targets = [slot] if slot is not None else list(self.slots.values())
        version_before = targets[0].version if targets else 0
        action = "none"
        if act and signal_family(signal) in policy.act_on and targets:
            if kind == "drift":
                done = {t.apply(policy.action, alert["index"]) for t in targets}
                action = ", ".join(sorted(done))
            elif kind == "warning" and policy.action in ("background", "challenger"):
                index = alert["index"]
                if policy.action == "background":
                    started = [t.start_background(index) for t in targets]
                    action = "background model started" if any(started) else "none"
                else:
                    started = [t.start_challenger(index) for t in targets]
                    action = "challenger started" if any(started) else "none"
        if targets and targets[0].version != version_before:
            self._model_replaced()
        alert.update(
            action=action,
            model_version=version_before,
            new_model_version=targets[0].version if targets else 0,
            partition=self.partition,
            key=key,
            offset=self.watermark + 1,
            ts=self.clock_ms or None,
        )
        if kind == "recovered":
            self.incidents.on_signal_recovered(signal)
            return
        if kind == "drift":
            closing = self.incidents.close_for_new_change(alert)
            if closing is not None:
                self._emit_closing(closing)
            self.incidents.on_drift(alert)
            if alert["kind"] == "drift":
                self.counters["incidents"] += 1
        else:
            alert["incident"] = self.incidents.incident_id
            if not self.config.alerts.warnings:
                return
        self._emit_alert(alert)

    def _emit_alert(self, alert: dict[str, Any]) -> None:
        alert.setdefault("signals", None)
        alert.setdefault("effect", None)
        self.counters["alerts"] += 1
        by = (alert["detector"], alert["signal"], alert["kind"])
        self.alert_counts[by] = self.alert_counts.get(by, 0) + 1
        self.outputs.alerts.append(alert)

    def _close_quiet_incident(self) -> None:
        alarm = any(s.alarm_active for s in self.slots.values())
        if self.slices is not None and not alarm:
            alarm = self.slices.alarm_active
        # An alarm still under test on the inputs or outputs may be the same change, seen late
        # (a model that adapts shifts its predictions gradually): the incident waits for it.
        if not alarm:
            watched = (self.features, self.prediction_monitor)
            alarm = any(monitors is not None and monitors.pending for monitors in watched)
        record = self.incidents.close_if_quiet(self.index, alarm_active=alarm)
        if record is not None:
            self._emit_closing(record)

    def _emit_closing(self, record: dict[str, Any]) -> None:
        record.update(
            action="none",
            model_version=self._version(),
            new_model_version=self._version(),
            partition=self.partition,
            key=None,
            offset=self.watermark,
            ts=self.clock_ms or None,
        )
        self._emit_alert(record)

    def _model_replaced(self) -> None:
        # Another model predicts differently: its predictions get a reference of their own,
        # or the swap itself would look like prediction drift.
        if self.prediction_monitor is not None:
            self.prediction_monitor.reset()
        if self.slices is not None:
            self.slices.reset_monitors()

    def _version(self) -> int:
        slot = self.slots.get(None) or next(iter(self.slots.values()), None)
        return slot.version if slot is not None else 0

    def _maybe_promote(self, slot: ModelSlot, key: Any, index: int) -> None:
        version_before = slot.version
        evidence = slot.maybe_promote(index)
        if evidence is None:
            return
        self.counters["promotions"] += 1
        self._model_replaced()
        drift = evidence.pop("drift", None)
        if drift is not None:
            self._on_alert(drift, slot, key, act=False)
            # The version change is the promoted record's, which follows.
            drift.update(action="promotion", model_version=version_before)
            drift["new_model_version"] = version_before
        self._emit_alert(
            {
                "kind": "promoted",
                "detector": evidence["test"],
                "signal": "error",
                "index": index,
                "evidence": evidence,
                "action": f"promoted {evidence['challenger']['name']}",
                "model_version": version_before,
                "new_model_version": slot.version,
                "partition": self.partition,
                "key": key,
                "offset": self.watermark + 1,
                "ts": self.clock_ms or None,
                "incident": self.incidents.incident_id,
                "effect": {
                    "measure": "loss_difference",
                    "d": evidence["champion_loss"] - evidence["challenger_loss"],
                    "before": evidence["champion_loss"],
                    "after": evidence["challenger_loss"],
                },
            }
        )
