"""The live worker counts an event's wait for labels from when it was fetched.

A worker that is behind (a backlog, a busy engine) gets records from its agents some time after
the consumer fetched them. The label order keeps an event back until a labels fetch made
``labels.max_idle_ms`` after the event was read; counted from the hand-over instead of the
fetch, a backlog waited twice, and the worker sat idle between bursts (the gaps of
``scripts/bench_live.py`` before this).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from driftline.label_order import Record
from driftline.live.worker import Worker
from driftline.settings import load_settings
from tests.in_memory_run import KEY, T0_MS, _Floors, _Publisher

MAX_IDLE_MS = 200.0


def _events(count: int) -> list[Record]:
    return [
        Record(
            0, i, T0_MS + i, json.dumps({"id": i, "x": {"a": float(i % 7)}, "y": i % 2}).encode()
        )
        for i in range(count)
    ]


async def _processed_on_hand_over(fetched_ms: float | None) -> int:
    """Events handed over once, the labels topic empty and just fetched: how many the engine
    processed before any tick."""
    settings = load_settings(environ={"DRIFTLINE_LABELS__MAX_IDLE_MS": str(MAX_IDLE_MS)})
    events, labels = settings.kafka.topics.events, settings.kafka.topics.labels
    records = _events(20)
    ends = {(events, 0): len(records), (labels, 0): 0}
    worker = Worker(
        settings,
        KEY,
        _Publisher(),  # type: ignore[arg-type]
        _metrics(),
        lambda t, p: ends.get((t, p)),
        fetched_at=lambda t, p: time.time() * 1000,  # every topic fetched just now
    )
    worker.keeper.floor_store = _Floors()
    await worker.on_assigned([0], {})
    await worker.handle_events(records, fetched_ms)
    return int(worker.engines[0].counters["events"])


def _metrics() -> Any:
    from driftline.live.metrics import WorkerMetrics

    return WorkerMetrics(lambda: {})


def test_events_fetched_long_enough_ago_go_at_once() -> None:
    fetched = time.time() * 1000 - 2 * MAX_IDLE_MS
    assert asyncio.run(_processed_on_hand_over(fetched)) == 20


def test_events_fetched_just_now_still_wait_for_labels() -> None:
    assert asyncio.run(_processed_on_hand_over(None)) == 0
    assert asyncio.run(_processed_on_hand_over(time.time() * 1000)) == 0


def test_a_fetch_time_in_the_future_counts_as_now() -> None:
    # A clock that jumped must not let an event skip its wait.
    assert asyncio.run(_processed_on_hand_over(time.time() * 1000 + 10 * MAX_IDLE_MS)) == 0
