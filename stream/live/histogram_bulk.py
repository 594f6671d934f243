"""Many observations into a Prometheus histogram at once: one lock round per bucket, not per value.

The worker times every event into ``driftline_processing_seconds``; ``Histogram.observe`` takes a
lock for the sum and one for the bucket on each call, a few per cent of a busy worker's time.
:func:`observe_many` counts a chunk's values per bucket first (a binary search over the same upper
bounds) and then adds each bucket's count and the sum once: the histogram is the one the same
values observed one by one would give (buckets and count exactly, the sum up to float rounding).

It uses ``prometheus_client``'s histogram internals (``_upper_bounds``, ``_buckets``, ``_sum``,
the same since 0.4); a histogram without them is observed value by value. No exemplars: the worker
sets none. ``tests/test_histogram_bulk.py`` compares the exposition of both ways.

>>> from prometheus_client import CollectorRegistry, Histogram
>>> h = Histogram("t_seconds", "t", buckets=(0.001, 0.01), registry=CollectorRegistry())
>>> observe_many(h, [0.0005, 0.001, 0.002, 0.5])
>>> [(s.labels["le"], s.value) for s in h.collect()[0].samples if s.name == "t_seconds_bucket"]
[('0.001', 2.0), ('0.01', 3.0), ('+Inf', 4.0)]
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any


def observe_many(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every ``v`` of ``values`` (a histogram or a labelled child)."""
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    histogram._raise_if_not_observable()  # a parent with labels must be observed through one
    counts = [0] * len(bounds)
    last = len(bounds)
    for value in values:
        # The first bucket whose upper bound is >= value: observe()'s ``value <= bound``.
        i = bisect_left(bounds, value)
        if i < last:
            counts[i] += 1
    total.inc(sum(values))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
