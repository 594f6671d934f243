"""The live worker's state: one engine per owned ``events`` partition, recovery, snapshots, outputs.

Faust delivers records (:mod:`driftline.live.app`); this module decides what happens to them, so that after
a crash, a restart or a rebalance every event is learned exactly once:

* **Ownership.** Partition ``p`` of ``events`` and of ``labels`` belong to one worker (Faust's
  assignor co-partitions them) and one :class:`~driftline.learners.engine.Engine`.
* **Recovery.** On assignment the worker reads ``model-snapshots`` (key ``"<app id>:<p>"``),
  restores the newest snapshot whose signature verifies (one that does not is refused, logged and
  counted, never unpickled), and the driver seeks ``events`` to its ``watermark + 1`` and
  ``labels`` to its ``label_watermark + 1``. No valid snapshot: a fresh engine from offset 0.
  Consumer-group offsets are never committed: the snapshot *is* the committed position.
* **Snapshots** are published every ``snapshot.every_events`` events (the engine asks for them),
  on revocation and on a clean shutdown, and only after every output record of the events they
  cover has been acknowledged by the broker. A snapshot therefore never skips an event whose
  prediction was lost; events after it are replayed and predicted again, identically.
* **Late labels** are applied where their time puts them among the events
  (:mod:`driftline.label_order`): the order is a function of the data, so a replay predicts what
  the first run predicted, and one partition live predicts what ``driftline backtest
  --label-delay`` does.
* **Outputs** are retried until the broker takes them: a broker that goes away stalls the
  worker, it does not crash it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from driftline.label_order import LabelOrder, Record
from driftline.learners.engine import Engine
from driftline.live.engine_runner import EngineRunner
from driftline.live.metrics import WorkerMetrics
from driftline.live.output_records import send_outputs
from driftline.live.processing import EVENTS_WAITING_MAX, LABELS_WAITING_MAX, Processing
from driftline.live.publisher import Publisher
from driftline.live.snapshot_keeper import SnapshotKeeper
from driftline.settings import Settings

log = logging.getLogger("driftline.worker")

#: ``flow(topic, partition, on)``: resume (True) or pause (False) fetching a partition.
FlowControl = Callable[[str, int, bool], None]


# --------------------------------------------------------------------------- the worker


class Worker(Processing):
    """Engines of the owned partitions, driven by the Faust agents of :mod:`driftline.live.app`."""

    def __init__(
        self,
        settings: Settings,
        snapshot_key: bytes,
        publisher: Publisher,
        metrics: WorkerMetrics,
        highwater: Callable[[str, int], int | None],
        flow: FlowControl | None = None,
        fetched_at: Callable[[str, int], float | None] | None = None,
    ) -> None:
        self.settings = settings
        self.app_id = settings.service.app_id
        self.topics = settings.kafka.topics
        self.key = snapshot_key
        self.publisher = publisher
        self.metrics = metrics
        self.engines: dict[int, Engine] = {}
        self._highwater = highwater
        # Revoked engines, kept in case the next assignment hands their partitions back.
        self._parked: dict[int, Engine] = {}
        self._order: dict[int, LabelOrder] = {}
        self._next_offset: dict[tuple[str, int], int] = {}  # where reading each partition is at
        self._flow = flow
        self._fetched_at = fetched_at
        self._paused: set[tuple[str, int]] = set()
        self._max_idle_ms = settings.labels.max_idle_ms
        self._published: dict[int, tuple[int, int]] = {}  # (watermark, label watermark) on topic
        self._dirty: set[int] = set()  # outputs drained but not all handed over yet
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # records were handed over, or time passed
        self._reorder_logged: dict[int, float] = {}  # partition: when last logged (monotonic)
        self._unowned_warned: set[tuple[str, int]] = set()
        # Partitions being taken over: their records wait (Faust may deliver before we are done).
        self._assignment = 0  # the number of the newest assignment begun
        self.runner = EngineRunner(metrics)
        # Restore or hold, chunked publishing, the snapshot floor (driftline.live.snapshot_keeper).
        self.keeper = SnapshotKeeper(self)

    # ------------------------------------------------------------------ records

    async def handle_events(self, records: Sequence[Record]) -> None:
        """Events of one fetch: into their partition's label order (:meth:`process_ready`
        processes what it lets go)."""
        await self._read(self.topics.events, records, EVENTS_WAITING_MAX)

    async def handle_labels(self, records: Sequence[Record]) -> None:
        """Late labels of one fetch: into their partition's label order (each is processed right
        before the first event later than it)."""
        await self._read(self.topics.labels, records, LABELS_WAITING_MAX)

    async def _read(self, topic: str, records: Sequence[Record], max_waiting: int) -> None:
        now_ms = time.time() * 1000
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        is_events = topic == self.topics.events
        async with self._lock:
            for p, recs in by_partition.items():
                order = self._order.get(p)
                if order is None or p not in self.engines:
                    self._warn_unowned(topic, p)
                    continue
                start = self._next_offset.get((topic, p), 0)
                if recs[0].offset < start:
                    # Read already: below the snapshot's watermarks (processed before it), or
                    # handed over again (the consumer's check of what was read lets the last
                    # record read through again). Added twice, a record would count twice in the
                    # order of what comes next.
                    kept = [r for r in recs if r.offset >= start]
                    self.engines[p].counters["duplicates"] += len(recs) - len(kept)
                    if not kept:
                        continue
                    recs = kept
                (order.add_events if is_events else order.add_labels)(recs, now_ms)
                self._next_offset[(topic, p)] = recs[-1].offset + 1
                side = order.events if is_events else order.labels
                if len(side.queue) >= max_waiting:
                    # Only from this topic's own handler: Faust skips the rest of a fetch for a
                    # partition paused while the fetch is being handed over.
                    self._set_flow(topic, p, False)
        self._wake.set()

    async def tick(self) -> None:
        """Periodic: let the processing task look at records waiting at the head (their wait
        may be over); refresh the gauges."""
        self._wake.set()
        # No lock (nothing here awaits): the tick must not wait behind a slice being processed.
        for p, engine in self.engines.items():
            hw = self._highwater(self.topics.events, p)
            if hw is not None:
                self.metrics.lag.labels(self.topics.events, str(p)).set(
                    max(0, hw - engine.watermark - 1)
                )
            hw = self._highwater(self.topics.labels, p)
            if hw is not None:
                self.metrics.lag.labels(self.topics.labels, str(p)).set(
                    max(0, hw - engine.label_watermark - 1)
                )

    def _warn_unowned(self, topic: str, p: int) -> None:
        # Records of a partition revoked while they were in flight: its new owner replays them.
        if (topic, p) not in self._unowned_warned:
            self._unowned_warned.add((topic, p))
            log.info("skipping records of %s[%d]: not owned by this worker (now)", topic, p)

    # ------------------------------------------------------------------ outputs and snapshots

    async def _publish(self, p: int, engine: Engine, reason: str) -> None:
        out = engine.outputs.drain()
        await send_outputs(self.publisher, self.topics, self.metrics, p, out)
        for snap in out.snapshots:
            await self._publish_snapshot(p, snap, reason)
        self._dirty.discard(p)

    async def _publish_snapshot(self, p: int, snap: Mapping[str, Any], reason: str) -> None:
        # In chunks under rotating keys, then the floor: driftline.live.snapshot_keeper.
        await self.keeper.publish(p, snap, reason)

    async def _final_snapshot(self, p: int, engine: Engine, reason: str) -> None:
        if p in self._dirty:
            log.warning(
                "partition %d: no %s snapshot: the outputs of its last records may not have been "
                "sent; its next owner replays them from the previous snapshot",
                p,
                reason,
            )
            return
        if self._published.get(p) == (engine.watermark, engine.label_watermark):
            return  # nothing new since the last one
        started = time.perf_counter()
        # checkpoint(), not snapshot(): an off-schedule snapshot must not move the rollback
        # target, or the next owner would predict differently from an uninterrupted run.
        engine.checkpoint()
        self.metrics.snapshot_seconds.labels("take").observe(time.perf_counter() - started)
        await self._publish(p, engine, reason)

    # ------------------------------------------------------------------ rebalancing

    async def on_revoked(self, partitions: Iterable[int]) -> None:
        """Snapshot and park the engines of revoked partitions (the next owner restores them)."""
        async with self._lock:
            for p in sorted(partitions):
                engine = self.engines.pop(p, None)
                self._order.pop(p, None)
                if engine is None:
                    continue
                await self._final_snapshot(p, engine, "revoked")
                if p in self._dirty:  # ahead of its outputs: only a snapshot may bring it back
                    self._dirty.discard(p)
                else:
                    self._parked[p] = engine
            await self.keeper.settle()  # the next owner reads the floors
            self.metrics.assigned.set(len(self.engines))

    def begin_assignment(self) -> None:
        """Call first thing on an assignment (the app does, before Faust resumes fetching, and
        keeps its partitions paused until they are restored and sought: no record of them comes
        before). A newer assignment makes an unfinished one stale (:attr:`assignment`)."""
        self._assignment += 1

    @property
    def assignment(self) -> int:
        """The number of the newest assignment begun."""
        return self._assignment

    def is_current(self, assignment: int) -> bool:
        """``assignment`` (from :meth:`begin_assignment`) is the newest one."""
        return assignment == self._assignment

    def fetching(self, topic: str, p: int) -> bool:
        """``topic[p]`` may be fetched: not paused by this worker (a held partition, or flow
        control)."""
        return (topic, p) not in self._paused

    async def on_assigned(
        self, partitions: Iterable[int], snapshots: Mapping[int, Any], assignment: int | None = None
    ) -> dict[int, tuple[int, int]] | None:
        """Take over ``partitions``; return where to resume: ``{p: (events, labels offset)}``
        (None: a newer assignment came while the snapshots were read; it takes over instead)."""
        async with self._lock:
            if assignment is not None and assignment != self._assignment:
                return None
            held = {**self._parked, **self.engines}
            owned_before = set(held)
            for p in self._dirty:
                held.pop(p, None)
            self._dirty.clear()
            self.engines, self._parked = {}, {}
            self._order.clear()
            self._next_offset.clear()
            for topic, p in list(self._paused):
                self._set_flow(topic, p, True)
            self._unowned_warned.clear()
            resume = {}
            for p in sorted(partitions):
                engine = self._recover(p, held.get(p), snapshots.get(p, []))
                if engine is None:  # held: no engine, not fetched, nothing committed
                    self._set_flow(self.topics.events, p, False)
                    self._set_flow(self.topics.labels, p, False)
                    continue
                self.engines[p] = engine
                self._order[p] = LabelOrder(self._max_idle_ms)
                resume[p] = (engine.watermark + 1, engine.label_watermark + 1)
                for topic, at in zip(
                    (self.topics.events, self.topics.labels), resume[p], strict=True
                ):
                    self._next_offset[(topic, p)] = at
            for p in set(self._published) - set(self.engines):
                del self._published[p]
            for p in owned_before - set(self.engines):  # now another worker's (or held)
                self.metrics.forget(p, (self.topics.events, self.topics.labels))
            self.metrics.assigned.set(len(self.engines))
            await self.keeper.after_recovery(set(partitions))  # hold alerts, floors
            return resume

    def _recover(self, p: int, held: Engine | None, records: Any) -> Engine | None:
        """The engine ``p`` resumes with: the newest snapshot that verifies and is not below the
        floor, the engine in memory, or a fresh one; ``None`` when the partition is held
        (snapshots exist but none may be restored: see driftline.live.snapshot_keeper)."""
        return self.keeper.recover(p, held, records)

    async def shutdown(self) -> None:
        """Final snapshots of every owned partition (clean shutdown), then flush."""
        async with self._lock:
            for p, engine in sorted(self.engines.items()):
                await self._final_snapshot(p, engine, "shutdown")
            await self.publisher.flush()
            await self.keeper.settle()
            self.keeper.close()

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows."""
        return {
            "status": "ok",
            "app_id": self.app_id,
            "assigned": sorted(self.engines),
            "held": {str(p): why for p, why in sorted(self.keeper.held.items())},
            "partitions": {
                str(p): {
                    "watermark": e.watermark,
                    "label_watermark": e.label_watermark,
                    "events": e.counters["events"],
                    "learned": e.counters["learned"],
                    "labels_waiting": len(self._order[p].labels.queue) if p in self._order else 0,
                }
                for p, e in sorted(self.engines.items())
            },
        }
