"""Running the engine on a partition's records: timed per record, and an exception contained.

The engine turns bad input into dead letters, so an exception from it is a bug. It is logged with
the record's position and counted (``driftline_processing_errors_total``), and the worker goes on
with the next record rather than crash-loop on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from driftline.label_order import Record
from driftline.learners.engine import Engine
from driftline.live.histogram_bulk import observe_many
from driftline.live.metrics import WorkerMetrics

log = logging.getLogger("driftline.worker")


class EngineRunner:
    """Calls into the engines, each timed into the ``driftline_processing_seconds`` histogram."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics
        self._observers: dict[str, Callable[[float], None]] = {}
        self._children: dict[str, Any] = {}  # histogram children for observe_many

    def run(self, p: int, offset: int, kind: str, call: Callable[..., None], *args: Any) -> None:
        """``call(*args)`` for the ``kind`` ("label", "batch") at ``offset`` of partition ``p``."""
        started = time.perf_counter()
        try:
            call(*args)
        except Exception:
            self._processing_error(p, kind, offset)
        self._observe(kind)(time.perf_counter() - started)

    def run_events(self, p: int, engine: Engine, records: Sequence[Record]) -> None:
        """:meth:`run`, inlined for the per-record hot path: every event is still timed on its
        own, but the times go into the histogram once per chunk (:func:`observe_many`), and
        one clock reading ends an event and starts the next."""
        process, clock = engine.process, time.perf_counter
        seconds: list[float] = []
        took = seconds.append
        started = clock()
        for r in records:
            try:
                process(r.value, r.offset, r.timestamp_ms)
            except Exception:
                self._processing_error(p, "event", r.offset)
            ended = clock()
            took(ended - started)
            started = ended
        if "event" not in self._children:
            self._children["event"] = self.metrics.latency.labels("event")
        observe_many(self._children["event"], seconds)

    def _processing_error(self, p: int, kind: str, offset: int) -> None:
        self.metrics.errors.labels(kind).inc()
        log.exception("partition %d: processing the %s at offset %d", p, kind, offset)

    def _observe(self, kind: str) -> Callable[[float], None]:
        # The histogram child of a kind, looked up once (labels() costs about as much as
        # observe()); created on first use, so /metrics shows only the kinds seen.
        observe = self._observers.get(kind)
        if observe is None:
            observe = self._observers[kind] = self.metrics.latency.labels(kind).observe
        return observe
