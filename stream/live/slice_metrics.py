"""Prometheus metrics of the slices (``[slices]``): a block of its own beside
:class:`driftline.live.metrics.EngineCollector`, read from the engines at scrape time like it.

Label values are bounded: the features of ``slices.by``, and per feature at most
``slices.max_values`` values plus ``__other__`` (where every later new value is counted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from driftline.learners.engine import Engine

LABELS = ["partition", "feature", "value"]


class SliceCollector(Collector):
    """Per-partition, per-slice counts, metric and drifts of the engines the worker owns."""

    def __init__(self, engines: Callable[[], Mapping[int, Engine]]) -> None:
        self._engines = engines

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "driftline_slice_events", "Events in each slice ([slices] by)", labels=LABELS
        )
        labelled = CounterMetricFamily(
            "driftline_slice_labelled", "Labels scored in each slice", labels=LABELS
        )
        drifts = CounterMetricFamily(
            "driftline_slice_drifts",
            "Confirmed drifts of the model's error in each slice",
            labels=LABELS,
        )
        metric = GaugeMetricFamily(
            "driftline_slice_metric",
            "Prequential metric over the labels of each slice",
            labels=[*LABELS, "metric"],
        )
        skipped = CounterMetricFamily(
            "driftline_slice_skipped",
            "Events in no slice of a feature (it was missing, or not a string, boolean or integer)",
            labels=["partition", "feature"],
        )
        # Called from the HTTP server's thread: copy before iterating (the loop mutates them).
        for partition, engine in sorted(dict(self._engines()).items()):
            slices = engine.slices
            if slices is None:
                continue
            p = str(partition)
            name = getattr(engine, "metric_name", None) or "metric"
            for feature, values in slices.describe().items():
                skipped.add_metric([p, feature], slices.skipped.get(feature, 0))
                for value, row in values.items():
                    labels = [p, feature, value]
                    events.add_metric(labels, row["events"])
                    labelled.add_metric(labels, row["labelled"])
                    drifts.add_metric(labels, row["alerts"])
                    if row["metric"] is not None:
                        metric.add_metric([*labels, name], row["metric"])
        yield from (events, labelled, drifts, metric, skipped)
