"""How the worker processes what it was handed: a slice per partition at a time, in the order
the partition's :class:`~driftline.label_order.LabelOrder` lets records go, each slice's outputs
published at once; fetching paused while too much waits, resumed when there is room.

A mixin of :class:`driftline.live.worker.Worker`, which sets every attribute below and hands
records over (``Worker.handle_events`` / ``handle_labels``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from driftline.label_order import LabelOrder
from driftline.learners.engine import Engine
from driftline.live.engine_runner import EngineRunner
from driftline.live.metrics import WorkerMetrics
from driftline.settings import Settings

log = logging.getLogger("driftline.worker")

#: Records waiting in a partition's label order before its fetching is paused (memory bound):
#: events wait for labels (and labels for events) only until the other side reaches their time.
EVENTS_WAITING_MAX = 10_000
LABELS_WAITING_MAX = 50_000
#: Outputs are published at least every this many events of a long run.
PUBLISH_EVERY = 500
#: Records applied out of their time order are logged at most this often per partition (seconds).
REORDERED_LOG_S = 10.0
#: While events wait at the head of a partition (``labels.max_idle_ms``), the processing task
#: looks again this soon after their wait can first be over (seconds), then as often until they
#: go: a labels fetch (every few ms) ends it. Waiting for the next hand-over or tick (50 ms)
#: instead left the worker idle with the wait over: on a backlog whose fetching was paused, a
#: third of its time (bench_live: lean micro-batch 45k events/s, 72k with no wait at all).
HEAD_RECHECK_S = 0.005
#: ... for at most this long past it (ms): an event that still waits then waits for labels
#: behind (the next hand-over or tick looks again), and polling would only spend CPU.
HEAD_RECHECK_FOR_MS = 50.0


class Processing:
    """The processing task of :class:`driftline.live.worker.Worker`."""

    settings: Settings
    topics: Any
    metrics: WorkerMetrics
    runner: EngineRunner
    engines: dict[int, Engine]
    _order: dict[int, LabelOrder]
    _lock: asyncio.Lock
    _wake: asyncio.Event
    _max_idle_ms: float
    _dirty: set[int]
    _paused: set[tuple[str, int]]
    _flow: Callable[[str, int, bool], None] | None
    _fetched_at: Callable[[str, int], float | None] | None
    _highwater: Callable[[str, int], int | None]
    _next_offset: dict[tuple[str, int], int]
    _reorder_logged: dict[int, float]
    _publish: Callable[[int, Engine, str], Awaitable[None]]

    async def process_forever(self) -> None:
        """The worker's processing task: whenever records were handed over (or the tick says
        time passed), process what their label orders let go."""
        while True:
            timeout = self._head_wait_s()
            if timeout is None:
                await self._wake.wait()
            else:
                # A timer, not wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that comes with a wake-up (the worker's stop then waits for ever).
                timer = asyncio.get_running_loop().call_later(timeout, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    timer.cancel()
            self._wake.clear()
            await self.process_ready()

    def _head_wait_s(self) -> float | None:
        """How long until the event that came first of those waiting at the head of a
        partition may go, plus HEAD_RECHECK_S (None: no event waits, or one waits for longer
        than HEAD_RECHECK_FOR_MS past that: for lagging labels, which hand-overs and the tick
        look at)."""
        read_at = [o.events.queue[0][1] for o in self._order.values() if o.events.queue]
        if not read_at:
            return None
        late_ms = time.time() * 1000 - (min(read_at) + self._max_idle_ms)
        if late_ms > HEAD_RECHECK_FOR_MS:
            return None
        return max(-late_ms, 0.0) / 1000 + HEAD_RECHECK_S

    async def process_ready(self) -> None:
        """Process what the label orders let go now, a slice per partition at a time.

        Handing records over does not wait for this: between slices the lock is free, so the
        agents add what was fetched meanwhile, and its wait for labels (``labels.max_idle_ms``)
        passes while the slices before it are processed. (Processing in the agents' hand-over
        left the worker idle after every long burst: what queued meanwhile then started its
        wait.)"""
        while await asyncio.shield(self._process_slice()):
            await asyncio.sleep(0)  # the agents' turn

    async def _process_slice(self) -> bool:
        # Shielded by the caller: a stopping worker finishes the slice and publishes its outputs.
        async with self._lock:
            more = False
            for p in list(self._order):
                more = await self._advance(p) or more
            return more

    async def _advance(self, p: int) -> bool:
        """Process the next slice of the events and labels of ``p`` that their order lets go,
        then publish its outputs. True: there may be more."""
        engine, order = self.engines.get(p), self._order.get(p)
        if engine is None or order is None or not order:
            return False
        batch_size = self.settings.engine.batch_size
        # A slice is published at once: outputs leave promptly, and a due snapshot is not held
        # back behind a long run (events that waited for labels).
        step = batch_size if batch_size > 1 else PUBLISH_EVERY
        reordered = order.reordered
        runs = order.take(
            self._caught_up_at(self.topics.events, p),
            self._caught_up_at(self.topics.labels, p),
            limit=step,
        )
        if not runs:
            return False
        # Resumed before the slice is processed, not after: the consumer fetches what comes
        # next meanwhile.
        self._resume_if_room(p, order)
        self._dirty.add(p)
        run = self.runner.run
        taken = 0
        for kind, recs in runs:
            taken += len(recs)
            if kind == "labels":
                for r in recs:
                    run(p, r.offset, "label", engine.process_label, r.value, r.offset, None)
            elif batch_size > 1:
                run(
                    p,
                    recs[0].offset,
                    "batch",
                    engine.process_batch,
                    [r.value for r in recs],
                    [r.offset for r in recs],
                    recs[-1].timestamp_ms,
                )
            else:
                self.runner.run_events(p, engine, recs)
        if order.reordered > reordered:
            self.metrics.labels_reordered.labels(str(p)).inc(order.reordered - reordered)
            self._log_reordered(p, order, order.reordered - reordered)
        await self._publish(p, engine, "periodic")
        return taken >= step

    def _log_reordered(self, p: int, order: LabelOrder, count: int) -> None:
        # At most one line per partition every REORDERED_LOG_S: a lagging producer reorders
        # many records in a row; the counter has them all.
        now = time.monotonic()
        if now - self._reorder_logged.get(p, -math.inf) < REORDERED_LOG_S:
            return
        self._reorder_logged[p] = now
        log.warning(
            "partition %d: %d record(s) applied out of their time order (%d in all); the "
            "last: %s. A label that reaches the broker later than labels.max_idle_ms after a "
            "later event is applied on arrival (README: late labels)",
            p,
            count,
            order.reordered,
            order.last_reordered,
        )

    def _resume_if_room(self, p: int, order: LabelOrder) -> None:
        if len(order.events.queue) < EVENTS_WAITING_MAX // 2:
            self._set_flow(self.topics.events, p, True)
        if len(order.labels.queue) < LABELS_WAITING_MAX // 2:
            self._set_flow(self.topics.labels, p, True)

    def _set_flow(self, topic: str, p: int, on: bool) -> None:
        if self._flow is None or ((topic, p) in self._paused) != on:
            return
        (self._paused.discard if on else self._paused.add)((topic, p))
        self._flow(topic, p, on)

    def _caught_up_at(self, topic: str, p: int) -> float | None:
        """When a fetch last showed ``topic[p]`` read to its end (ms; None: it is not).

        The fetch's time is read before the highwater. The consumer thread sets both from each
        fetch response, the highwater first, so a response landing between the two reads can
        only make the answer older, never newer. (Read the other way round, an old highwater
        paired with a new fetch's time: "read to the end" as of a fetch that had brought more
        events. A label then went before events older than it, on a worker a second behind.)
        """
        at = self._fetched_at(topic, p) if self._fetched_at is not None else None
        if at is None:
            at = time.time() * 1000  # no fetch time to go by: this moment, before the look
        hw = self._highwater(topic, p)
        if hw is None or self._next_offset.get((topic, p), 0) < hw:
            return None
        return at
