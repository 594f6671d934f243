"""``SliceMonitors``: the prequential metric and an error monitor per slice of the traffic.

``[slices] by = ["region"]`` names features whose values define slices. Every event is counted in
its slice of each such feature; every scored label updates that slice's metric; the model's error
on it goes to that slice's own error monitor, so that a change in one region (one device, one
customer tier) raises a drift even when the global error hardly moves.

* **Values**: strings as they are, booleans as ``"true"`` / ``"false"``, integers (and integral
  floats: JSON readers differ) as their decimal text. An event without the feature, or with a
  non-integral number, is in no slice of it (counted in ``skipped``).
* **Bounded**: at most ``max_values`` values per feature, first come first served; any later new
  value goes to the feature's ``__other__`` slice, which is watched like the others. A
  deterministic rule, so a replay, a backtest and a restored worker slice the same events the same
  way; the values that fill the table first are, on a stream, usually the frequent ones
  (``__other__`` shows how much traffic was left out). Never evicted: a slice's monitor keeps its
  reference for as long as the engine lives.
* **Budget**: each slice's monitor is the error monitor of ``[detectors.error]`` (detector,
  ``min_effect``, ``confirm_events``, cooldown) with its ``ert`` multiplied by the number of
  features in ``by``. A monitor's ``ert`` counts the labels it sees; the slices of one feature
  split the labels between them, so together they false-alarm at most once per ``ert`` labels
  (a union bound: sum of ``share / ert`` over slices is ``1 / ert``), and all features together
  at most once per ``detectors.error.ert`` labels: the same family-wise budget as the global
  error signal, however many values there are.

The state (the admitted values, counts, metrics and monitors) travels in the engine's snapshots.

>>> slices = SliceMonitors(("region", "vip"), max_values=2)
>>> [slices.observe({"region": r, "vip": v}) for r, v in [("e", True), ("w", 1), ("n", None)]]
[('e', 'true'), ('w', '1'), ('__other__', None)]
>>> slices.describe()["region"]["__other__"]["events"], slices.skipped
(1, {'region': 0, 'vip': 1})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from driftline.learners.config import LearningConfig, SlicesConfig
from driftline.learners.model_error import error_monitor

OTHER = "__other__"

#: A slice's values, one per feature of ``by`` (``None``: the event is in no slice of it).
Cells = tuple[str | None, ...]


def slice_value(value: Any) -> str | None:
    """The slice an event's feature value puts it in (``None``: none)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float and value.is_integer():
        return str(int(value))
    return None


class Slice:
    """One slice: its counts, its metric and its error monitor (both made at first use)."""

    __slots__ = ("alerts", "events", "labelled", "metric", "monitor")

    def __init__(self) -> None:
        self.events = 0
        self.labelled = 0
        self.alerts = 0  # confirmed drifts of its error
        self.metric: Any = None
        self.monitor: Any = None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.events, self.labelled, self.alerts, self.metric, self.monitor)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.events, self.labelled, self.alerts, self.metric, self.monitor = state


def slice_monitor(config: LearningConfig, task: str, signal: str) -> Any:
    """The error monitor of ``[detectors.error]`` for one slice, with the family's budget share
    (see the module docstring); warnings off: a slice's warning would start no challenger."""
    det = config.detectors.error
    features = max(1, len(config.slices.by))
    error = dataclasses.replace(det, ert=det.ert * features, warning=False)
    sliced = dataclasses.replace(
        config, detectors=dataclasses.replace(config.detectors, error=error)
    )
    monitor = error_monitor(sliced, task)
    if monitor is not None:
        inner: Any = getattr(monitor, "monitor", monitor)  # a regression error's ScaledMonitor
        inner.signal = signal
    return monitor


class SliceMonitors:
    """Per-slice counts, metrics and error monitors of the features in ``by``."""

    def __init__(self, by: tuple[str, ...], max_values: int = 20) -> None:
        self.by = by
        self.max_values = max_values
        self.slices: dict[str, dict[str, Slice]] = {feature: {} for feature in by}
        self.skipped = dict.fromkeys(by, 0)

    @classmethod
    def from_config(cls, config: SlicesConfig) -> SliceMonitors | None:
        return cls(config.by, config.max_values) if config.by else None

    def matches(self, config: SlicesConfig) -> bool:
        """Built for these settings (a restored state for other ones starts afresh)."""
        return self.by == config.by and self.max_values == config.max_values

    def observe(self, x: dict[str, Any]) -> Cells:
        """Count an event in its slices; what its label will need to find them again."""
        cells: list[str | None] = []
        for feature in self.by:
            value = slice_value(x.get(feature))
            if value is None:
                self.skipped[feature] += 1
                cells.append(None)
                continue
            values = self.slices[feature]
            cell = values.get(value)
            if cell is None:
                if len(values) - (OTHER in values) >= self.max_values:
                    value = OTHER
                    cell = values.get(OTHER)
                if cell is None:
                    cell = values[value] = Slice()
            cell.events += 1
            cells.append(value)
        return tuple(cells)

    def _cells(self, cells: Cells) -> Iterator[tuple[str, str, Slice]]:
        for feature, value in zip(self.by, cells, strict=False):
            if value is not None:
                cell = self.slices[feature].get(value)
                if cell is not None:
                    yield feature, value, cell

    def score(self, cells: Cells, y: Any, prediction: Any, new_metric: Callable[[], Any]) -> None:
        """A label of an event in ``cells``, scored against what was served for it."""
        for _, _, cell in self._cells(cells):
            cell.labelled += 1
            if prediction is not None:
                if cell.metric is None:
                    cell.metric = new_metric()
                cell.metric.update(y, prediction)

    def watch(
        self, cells: Cells, error: float, index: int, new_monitor: Callable[[str], Any]
    ) -> list[dict[str, Any]]:
        """The model's error on a label of an event in ``cells``, to each slice's monitor; the
        alerts they raise, each naming its slice (``"slice": {"region": "east"}``)."""
        alerts = []
        for feature, value, cell in self._cells(cells):
            monitor = cell.monitor
            if monitor is None:
                monitor = cell.monitor = new_monitor(f"slice:{feature}={value}")
                if monitor is None:
                    continue
            alert = monitor.update(error, index)
            if alert is not None:
                alert["slice"] = {feature: value}
                if alert["kind"] == "drift":
                    cell.alerts += 1
                alerts.append(alert)
        return alerts

    def reset_monitors(self) -> None:
        """Another model serves: the errors of the one it replaced say nothing about it."""
        for values in self.slices.values():
            for cell in values.values():
                cell.monitor = None

    @property
    def alarm_active(self) -> bool:
        """A slice's alarm is active or waits for its confirmation: a small slice fills its
        confirmation window slowly, and its drift belongs to the incident still open."""
        return any(
            cell.monitor is not None and (cell.monitor.alarm_active or cell.monitor.pending)
            for values in self.slices.values()
            for cell in values.values()
        )

    @property
    def not_significant(self) -> int:
        return sum(
            cell.monitor.not_significant
            for values in self.slices.values()
            for cell in values.values()
            if cell.monitor is not None
        )

    def describe(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{feature: {value: {events, labelled, metric, alerts}}}``, most events first (the
        metric is ``None`` until a label was scored)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        # list() first: the metrics endpoint reads this from another thread while events add values.
        for feature, values in list(self.slices.items()):
            rows = sorted(list(values.items()), key=lambda item: (-item[1].events, item[0]))
            out[feature] = {
                value: {
                    "events": cell.events,
                    "labelled": cell.labelled,
                    "metric": _metric_value(cell.metric),
                    "alerts": cell.alerts,
                }
                for value, cell in rows
            }
        return out


def _metric_value(metric: Any) -> float | None:
    if metric is None:
        return None
    try:
        value = float(metric.get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None if value != value or value in (float("inf"), float("-inf")) else value
