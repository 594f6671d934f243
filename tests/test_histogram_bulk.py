"""``observe_many``: a chunk of values into a Prometheus histogram gives the histogram the same
values observed one by one give; and the worker's per-record runner times every event."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from driftline.label_order import Record
from driftline.learners.config import LearningConfig
from driftline.learners.engine import Engine
from driftline.live.engine_runner import EngineRunner
from driftline.live.histogram_bulk import observe_many
from driftline.live.metrics import LATENCY_BUCKETS, WorkerMetrics


def _samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _pair() -> tuple[Histogram, Histogram]:
    return tuple(  # type: ignore[return-value]
        Histogram("t_seconds", "t", ["kind"], buckets=LATENCY_BUCKETS, registry=CollectorRegistry())
        for _ in range(2)
    )


def test_same_histogram_as_one_by_one() -> None:
    rng = random.Random(5)
    # Values on the bounds themselves (le is inclusive), between them, at 0 and beyond the last.
    values = [*LATENCY_BUCKETS[:-1], 0.0, 1e9] + [rng.expovariate(2000.0) for _ in range(3000)]
    one_by_one, bulk = _pair()
    for v in values:
        one_by_one.labels("event").observe(v)
    for start in range(0, len(values), 700):  # several chunks, like the worker's
        observe_many(bulk.labels("event"), values[start : start + 700])
    observe_many(bulk.labels("event"), [])
    expected, got = _samples(one_by_one), _samples(bulk)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, rel=1e-12)
        else:
            assert got[key] == value, key
    count = [v for k, v in got.items() if k[0] == "t_seconds_count"]
    assert count == [len(values)]


def test_a_labelled_parent_is_refused_like_observe() -> None:
    parent, _ = _pair()
    with pytest.raises(ValueError):
        parent.observe(0.1)
    with pytest.raises(ValueError):
        observe_many(parent, [0.1])


def test_without_the_internals_it_observes_value_by_value() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    plain = Plain()
    observe_many(plain, [0.1, 0.2])
    assert plain.seen == [0.1, 0.2]


def test_run_events_times_every_event_and_contains_a_failure() -> None:
    engine = Engine(LearningConfig())
    metrics = WorkerMetrics(lambda: {0: engine})
    runner = EngineRunner(metrics)
    events = [
        b'{"id": %d, "x": {"a": %d}, "y": %s}' % (i, i % 7, b"true" if i % 2 else b"false")
        for i in range(50)
    ]
    records = [
        Record(partition=0, offset=i, value=v, timestamp_ms=1_700_000_000_000 + i)
        for i, v in enumerate(events)
    ]
    calls = 0
    process = engine.process

    def flaky(*args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 10:
            raise RuntimeError("a bug")
        process(*args)  # type: ignore[arg-type]

    engine.process = flaky  # type: ignore[method-assign]
    runner.run_events(0, engine, records)
    samples = _samples(metrics.latency)
    assert samples[("driftline_processing_seconds_count", (("kind", "event"),))] == 50
    assert samples[("driftline_processing_seconds_sum", (("kind", "event"),))] > 0
    assert metrics.errors.labels("event")._value.get() == 1
    assert engine.counters["events"] == 49
