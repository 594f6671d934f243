"""Prometheus metrics of the live worker, served on ``service.metrics_port`` at ``/metrics``.

The engine already counts everything per partition (events by outcome, predictions by source,
learned, rejected records by reason, alerts by detector, signal and kind, the running metric, the
model version), and those counters travel inside its snapshots. :class:`EngineCollector` reads them at
scrape time, so the hot path pays nothing and a partition's counters carry on across restarts and
rebalances. What only the worker sees (latency, snapshot size and duration, consumer lag, refused
snapshots, send retries, dead letters the broker acknowledged, dropped outputs) is recorded in
ordinary metrics here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from driftline.live.slice_metrics import SliceCollector

if TYPE_CHECKING:
    from driftline.learners.engine import Engine

#: Engine counter -> value of the ``outcome`` label of ``driftline_events_total``.
EVENT_OUTCOMES = {"valid": "valid", "invalid": "invalid", "duplicates": "duplicate"}
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
SNAPSHOT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class EngineCollector(Collector):
    """Per-partition metrics read from the engines the worker owns right now."""

    def __init__(self, engines: Callable[[], Mapping[int, Engine]]) -> None:
        self._engines = engines

    def collect(self) -> Iterator[Metric]:
        # Called from the HTTP server's thread: copy before iterating (the loop mutates them).
        engines = sorted(dict(self._engines()).items())
        events = CounterMetricFamily(
            "driftline_events", "Events processed, by outcome", labels=["partition", "outcome"]
        )
        predictions = CounterMetricFamily(
            "driftline_predictions", "Predictions, by source", labels=["partition", "source"]
        )
        learned = CounterMetricFamily(
            "driftline_learned", "Labelled events the model learned from", labels=["partition"]
        )
        guarded = CounterMetricFamily(
            "driftline_guarded",
            "Labelled events the outlier guard kept from learning",
            labels=["partition"],
        )
        overflow = CounterMetricFamily(
            "driftline_string_overflow",
            "String feature values past engine.max_string_values, encoded as name=__other__",
            labels=["partition"],
        )
        dropped = CounterMetricFamily(
            "driftline_features_dropped",
            "Features left out of the model input: new names past engine.max_inputs",
            labels=["partition"],
        )
        late = CounterMetricFamily(
            "driftline_labels_too_late",
            "Late labels whose prediction was no longer waiting",
            labels=["partition"],
        )
        # (driftline_dead_letters_total counts the dead letters the broker acknowledged.)
        dead = CounterMetricFamily(
            "driftline_rejected",
            "Records the engine rejected, by reason (each becomes a dead letter)",
            labels=["partition", "reason"],
        )
        alerts = CounterMetricFamily(
            "driftline_alerts",
            "Alerts on drift-alerts, by detector, signal and kind (drift, update, warning, "
            "recovered, promoted)",
            labels=["partition", "detector", "signal", "kind"],
        )
        metric = GaugeMetricFamily(
            "driftline_metric",
            "Running prequential metric (all events, and rolling window)",
            labels=["partition", "metric", "window"],
        )
        version = GaugeMetricFamily(
            "driftline_model_version", "Model version (moves on every change)", labels=["partition"]
        )
        watermark = GaugeMetricFamily(
            "driftline_watermark", "Last events offset processed", labels=["partition"]
        )
        # The one gauge of waiting labels: labels read ahead of their event are in consumer lag.
        awaiting = GaugeMetricFamily(
            "driftline_predictions_awaiting_label",
            "Predictions waiting for their late label (evicted after labels.ttl_seconds or past "
            "labels.max_pending)",
            labels=["partition"],
        )
        incidents = CounterMetricFamily(
            "driftline_incidents",
            "Drift incidents opened (one per change, whatever the signals)",
            labels=["partition"],
        )
        promotions = CounterMetricFamily(
            "driftline_promotions",
            "Challengers that replaced the champion after a significant paired test",
            labels=["partition"],
        )
        model_metric = GaugeMetricFamily(
            "driftline_model_metric",
            "Prequential metric of the champion and each challenger (position 0 is the champion)",
            labels=["partition", "position", "model", "role", "metric"],
        )
        model_labels = GaugeMetricFamily(
            "driftline_model_labels",
            "Labels each model has learned (position 0 is the champion)",
            labels=["partition", "position", "model", "role"],
        )
        for partition, engine in engines:
            p = str(partition)
            counters = dict(engine.counters)
            for name, outcome in EVENT_OUTCOMES.items():
                events.add_metric([p, outcome], counters.get(name, 0))
            predictions.add_metric([p, "model"], counters.get("predicted_by_model", 0))
            predictions.add_metric([p, "fallback"], counters.get("predicted_by_fallback", 0))
            learned.add_metric([p], counters.get("learned", 0))
            guarded.add_metric([p], counters.get("guarded", 0))
            overflow.add_metric([p], counters.get("string_overflow", 0))
            dropped.add_metric([p], counters.get("features_dropped", 0))
            late.add_metric([p], counters.get("labels_too_late", 0))
            for reason, count in dict(engine.dead_letter_reasons).items():
                dead.add_metric([p, reason], count)
            for (detector, signal, kind), count in dict(engine.alert_counts).items():
                alerts.add_metric([p, detector, signal, kind], count)
            metric_name = getattr(engine, "metric_name", None)
            if metric_name is not None:
                for window, value in (("all", engine.metric), ("rolling", engine.rolling)):
                    number = _finite(value)
                    if number is not None:
                        metric.add_metric([p, metric_name, window], number)
            header_version = max((slot.version for slot in list(engine.slots.values())), default=0)
            version.add_metric([p], header_version)
            watermark.add_metric([p], engine.watermark)
            awaiting.add_metric([p], len(engine.pending))
            incidents.add_metric([p], counters.get("incidents", 0))
            promotions.add_metric([p], counters.get("promotions", 0))
            # The partition's own model (per-key models would make the label set unbounded).
            slot = engine.slots.get(None)
            if slot is not None and metric_name is not None:
                task_metric = "accuracy" if slot.classification else "mae"
                for position, model in enumerate(slot.describe_models()):
                    labels = [p, str(position), model["name"], model["role"]]
                    model_labels.add_metric(labels, model["labels"])
                    if model["metric"] is not None:
                        model_metric.add_metric([*labels, task_metric], model["metric"])
        yield from (events, predictions, learned, guarded, overflow, dropped, late, dead, alerts)
        yield from (metric, version, watermark, awaiting, incidents, promotions)
        yield from (model_metric, model_labels)


def _finite(metric: Any) -> float | None:
    if metric is None:
        return None
    try:
        value = float(metric.get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


class WorkerMetrics:
    """The worker's metrics in their own registry (several workers can share one process)."""

    def __init__(self, engines: Callable[[], Mapping[int, Engine]]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.latency = Histogram(
            "driftline_processing_seconds",
            "Engine time per call: one event, one micro-batch or one label",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.snapshot_bytes = Gauge(
            "driftline_snapshot_bytes",
            "Size of the last snapshot published",
            ["partition"],
            registry=reg,
        )
        self.snapshot_seconds = Histogram(
            "driftline_snapshot_seconds",
            "Snapshot time: take (pickle and sign), publish (flush outputs, send, acknowledged)",
            ["phase"],
            buckets=SNAPSHOT_BUCKETS,
            registry=reg,
        )
        self.snapshots = Counter(
            "driftline_snapshots_published",
            "Snapshots published, by why (periodic, revoked, shutdown)",
            ["reason"],
            registry=reg,
        )
        self.snapshots_refused = Counter(
            "driftline_snapshots_refused",
            "Snapshot records refused and not loaded (signature, incomplete or mismatching "
            "chunks, copied or re-published, below the floor), each one counted",
            ["partition"],
            registry=reg,
        )
        self.partitions_held = Counter(
            "driftline_partitions_held",
            "Partitions held on assignment: snapshots exist but none may be restored",
            ["partition"],
            registry=reg,
        )
        self.held = Gauge(
            "driftline_held_partitions",
            "Partitions this worker holds (not processed until a key or a reset resolves them)",
            registry=reg,
        )
        self.snapshots_failed = Counter(
            "driftline_snapshots_failed",
            "Snapshots that could not be published (a chunk refused by the topic)",
            ["partition"],
            registry=reg,
        )
        self.recoveries = Counter(
            "driftline_recoveries",
            "Partitions taken over, by how (snapshot, memory, fresh)",
            ["how"],
            registry=reg,
        )
        self.lag = Gauge(
            "driftline_consumer_lag",
            "Records behind the end of the partition (high watermark - next offset)",
            ["topic", "partition"],
            registry=reg,
        )
        self.labels_reordered = Counter(
            "driftline_labels_reordered",
            "Late labels (or events) read after a later record of the other topic had been "
            "processed, at the head of the stream: applied on arrival, not where their time says",
            ["partition"],
            registry=reg,
        )
        self.dead_letters = Counter(
            "driftline_dead_letters",
            "Dead letters on the dead-letter topic (acknowledged by the broker), by reason",
            ["partition", "reason"],
            registry=reg,
        )
        self.outputs_dropped = Counter(
            "driftline_outputs_dropped",
            "Output records the broker refused as too large and that were dropped",
            ["topic"],
            registry=reg,
        )
        self.send_retries = Counter(
            "driftline_send_retries",
            "Output records sent again after a failed or timed-out delivery",
            ["topic"],
            registry=reg,
        )
        self.errors = Counter(
            "driftline_processing_errors",
            "Unexpected errors while processing (logged with a traceback)",
            ["kind"],
            registry=reg,
        )
        self.assigned = Gauge(
            "driftline_assigned_partitions", "Events partitions this worker owns", registry=reg
        )
        reg.register(EngineCollector(engines))
        # ----- slices ([slices] by): a block of their own, driftline.live.slice_metrics -----
        reg.register(SliceCollector(engines))

    def forget(self, partition: int, topics: Iterable[str]) -> None:
        """Drop the gauges of a partition this worker no longer owns: its new owner reports them,
        and a frozen copy here would be added to (or outrank) the live one on a dashboard."""
        p = str(partition)
        for topic in topics:
            self.lag.remove(topic, p)
        self.snapshot_bytes.remove(p)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """``/metrics`` on ``port`` in a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
