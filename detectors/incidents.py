"""``IncidentTracker``: one change is one incident, not a storm of alerts.

The monitors of every signal (the model's error, its predictions, each input feature, the guard's
flag rate) confirm drifts on their own. A subscriber wants one record per change: the first
confirmed drift opens an incident and goes out as ``drift``; each later detection while it is open
joins it and goes out as ``update`` (never a second ``drift``); once ``close_after`` events pass
with no new detection and no active alarm, a ``recovered`` record closes it. Every record carries
the incident id and the list of signals that moved so far, each with its detector, the index where
its detector first fired, the index where the drift was confirmed, and its effect size.

>>> tracker = IncidentTracker(close_after=1000, partition=0)
>>> first = tracker.on_drift({"kind": "drift", "signal": "error", "detector": "adwin",
...     "index": 5200, "first_index": 5050, "effect": {"d": 0.8, "before": 0.1, "after": 0.3}})
>>> first["kind"], first["incident"], [s["signal"] for s in first["signals"]]
('drift', 'p0-5200', ['error'])
>>> joined = tracker.on_drift({"kind": "drift", "signal": "feature:x", "detector": "adwin",
...     "index": 5600, "first_index": 5400, "effect": {"d": 1.2, "before": 3.0, "after": 4.2}})
>>> joined["kind"], [s["signal"] for s in joined["signals"]]
('update', ['error', 'feature:x'])
>>> tracker.close_if_quiet(6000, alarm_active=False) is None
True
>>> closed = tracker.close_if_quiet(6600, alarm_active=False)
>>> closed["kind"], closed["incident"], closed["evidence"]["events"]
('recovered', 'p0-5200', 1400)
"""

from __future__ import annotations

from typing import Any


def _signal_entry(alert: dict[str, Any]) -> dict[str, Any]:
    effect = alert.get("effect") or {}
    return {
        "signal": alert["signal"],
        "detector": alert["detector"],
        "first_index": alert.get("first_index", alert["index"]),
        "index": alert["index"],
        "offset": alert.get("offset"),
        "effect": effect.get("d"),
        "before": effect.get("before"),
        "after": effect.get("after"),
        "slice": alert.get("slice"),  # {"region": "east"} for a slice's error, else None
    }


class IncidentTracker:
    """Groups confirmed drifts into incidents; see the module docstring."""

    def __init__(self, close_after: int, partition: int | None = None) -> None:
        self.close_after = close_after
        self.partition = partition
        self.open: dict[str, Any] | None = None

    @property
    def incident_id(self) -> str | None:
        return self.open["id"] if self.open is not None else None

    def on_signal_recovered(self, signal: str) -> None:
        """A signal of the open incident ended its alarm: its next drift is a new change."""
        incident = self.open
        if incident is not None and any(s["signal"] == signal for s in incident["signals"]):
            recovered = incident.setdefault("recovered", [])
            if signal not in recovered:
                recovered.append(signal)

    def close_for_new_change(self, alert: dict[str, Any]) -> dict[str, Any] | None:
        """The ``recovered`` record of the open incident when ``alert`` is a new change: a drift
        of a signal that already moved in it and has ended its alarm since. (An incident stays
        open while any alarm is under test, so two changes a few thousand events apart would
        otherwise be one incident.)"""
        incident = self.open
        if incident is None or alert["signal"] not in incident.get("recovered", ()):
            return None
        return self._close(alert["index"])

    def on_drift(self, alert: dict[str, Any]) -> dict[str, Any]:
        """Turn a confirmed drift alert into the record a subscriber gets (``drift`` or
        ``update``), in place, and return it."""
        entry = _signal_entry(alert)
        incident = self.open
        if incident is None:
            # Deterministic id (partition and index), so a replay names the same incident.
            prefix = f"p{self.partition}" if self.partition is not None else "p"
            incident = self.open = {
                "id": f"{prefix}-{alert['index']}",
                "opened_at": alert["index"],
                "signals": [],
            }
            kind = "drift"
        else:
            kind = "update"
        incident["signals"].append(entry)
        incident["last_at"] = alert["index"]
        alert["kind"] = kind
        alert["incident"] = incident["id"]
        alert["signals"] = [dict(s) for s in incident["signals"]]
        return alert

    def quiet(self, index: int) -> bool:
        """An incident is open and no detection joined it for ``close_after`` events."""
        return self.open is not None and index - self.open["last_at"] >= self.close_after

    def close_if_quiet(self, index: int, *, alarm_active: bool) -> dict[str, Any] | None:
        """The ``recovered`` record of the open incident once it has been quiet long enough."""
        if self.open is None or alarm_active or not self.quiet(index):
            return None
        return self._close(index)

    def _close(self, index: int) -> dict[str, Any]:
        incident = self.open
        assert incident is not None
        self.open = None
        first = incident["signals"][0]
        return {
            "kind": "recovered",
            "detector": first["detector"],
            "signal": first["signal"],
            "index": index,
            "incident": incident["id"],
            "signals": incident["signals"],
            "effect": None,
            "evidence": {
                "opened_at": incident["opened_at"],
                "last_detection_at": incident["last_at"],
                "events": index - incident["opened_at"],
                "signals": len(incident["signals"]),
            },
        }
