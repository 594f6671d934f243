"""The live worker's state: one engine per owned ``events`` partition, recovery, snapshots, outputs.

Faust delivers records (:mod:`stream.app`); this module decides what happens to them, so that after
a crash, a restart or a rebalance every event is learned exactly once:

* **Ownership.** Partition ``p`` of ``events`` and of ``labels`` belong to one worker (Faust's
  assignor co-partitions them) and one :class:`~learners.engine.Engine`.
* **Recovery.** On assignment the worker reads ``model-snapshots`` (key ``"<app id>:<p>"``),
  restores the newest snapshot whose signature verifies (one that does not is refused, logged and
  counted, never unpickled), and the driver seeks ``events`` to its ``watermark + 1`` and
  ``labels`` to its ``label_watermark + 1``. No valid snapshot: a fresh engine from offset 0.
  Consumer-group offsets are never committed: the snapshot *is* the committed position.
* **Snapshots** are published every ``snapshot.every_events`` events (the engine asks for them),
  on revocation and on a clean shutdown, and only after every output record of the events they
  cover has been acknowledged by the broker. A snapshot therefore never skips an event whose
  prediction was lost; events after it are replayed and predicted again, identically.
* **Late labels** are held until their event has been processed (the events partition has
  passed the label's timestamp, or is caught up), then joined in offset order.
* **Outputs** are retried until the broker takes them: a broker that goes away stalls the
  worker, it does not crash it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from learners.engine import Engine
from stream.metrics import WorkerMetrics
from stream.publisher import OutputTooLarge, Publisher, encode
from stream.settings import Settings
from stream.snapshot_keeper import SnapshotKeeper

log = logging.getLogger("driftline.worker")

#: A late label whose event has not shown up is joined anyway (and found "too late") after this.
LABEL_WAIT_S = 30.0
#: A label is joined once the events partition is this far past the label's timestamp (or has
#: caught up): producers' clocks may disagree by up to this much.
LABEL_CLOCK_SKEW_MS = 1000


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as much of it as the worker needs."""

    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes


# --------------------------------------------------------------------------- the worker


class Worker:
    """Engines of the owned partitions, driven by the Faust agents of :mod:`stream.app`."""

    def __init__(
        self,
        settings: Settings,
        snapshot_key: bytes,
        publisher: Publisher,
        metrics: WorkerMetrics,
        highwater: Callable[[str, int], int | None],
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
        self._labels: dict[int, deque[tuple[Record, float]]] = {}
        self._last_event_ts: dict[int, int] = {}
        self._published: dict[int, tuple[int, int]] = {}  # (watermark, label watermark) on topic
        self._dirty: set[int] = set()  # outputs drained but not all handed over yet
        self._lock = asyncio.Lock()
        self._max_waiting = settings.labels.max_pending
        self._unowned_warned: set[tuple[str, int]] = set()
        # Partitions being taken over: their records wait (Faust may deliver before we are done).
        self._assigning: set[int] = set()
        self._ready = asyncio.Event()
        self._ready.set()
        self._observers: dict[str, Callable[[float], None]] = {}
        # Restore or hold, chunked publishing, the snapshot floor (stream.snapshot_keeper).
        self.keeper = SnapshotKeeper(self)

    async def _until_ready(self, records: Sequence[Record]) -> None:
        # Records fetched before the seek to the watermark are safe to process once the engine
        # is in place: the engine skips offsets at or below its watermark, and without committed
        # offsets the fetch position before the seek is never beyond it.
        if self._assigning and any(r.partition in self._assigning for r in records):
            await self._ready.wait()

    # ------------------------------------------------------------------ records

    async def handle_events(self, records: Sequence[Record]) -> None:
        """Process events (in offset order per partition) and publish what the engines emit."""
        now_ms = time.time() * 1000
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        batch = self.settings.engine.batch_size > 1
        await self._until_ready(records)
        async with self._lock:
            for p, recs in by_partition.items():
                engine = self.engines.get(p)
                if engine is None:
                    self._warn_unowned(self.topics.events, p)
                    continue
                self._dirty.add(p)
                if batch:
                    self._run(
                        p,
                        recs[0].offset,
                        "batch",
                        engine.process_batch,
                        [r.value for r in recs],
                        [r.offset for r in recs],
                        now_ms,
                    )
                else:
                    self._run_events(p, engine, recs, now_ms)
                stamps = [r.timestamp_ms for r in recs if r.timestamp_ms is not None]
                if stamps:
                    self._last_event_ts[p] = max(self._last_event_ts.get(p, stamps[0]), *stamps)
                await self._publish(p, engine, "periodic")
                await self._join_labels(p, now_ms)

    async def handle_labels(self, records: Sequence[Record]) -> None:
        """Queue late labels per partition; join each once its event has been processed."""
        now_ms = time.time() * 1000
        await self._until_ready(records)
        arrived = time.monotonic()
        async with self._lock:
            touched = set()
            for record in records:
                queue = self._labels.get(record.partition)
                if queue is None:
                    self._warn_unowned(self.topics.labels, record.partition)
                    continue
                queue.append((record, arrived))
                touched.add(record.partition)
            for p in touched:
                await self._join_labels(p, now_ms)

    async def tick(self) -> None:
        """Periodic: join labels whose events partition went idle; refresh the lag gauges."""
        now_ms = time.time() * 1000
        async with self._lock:
            for p in [p for p, queue in self._labels.items() if queue]:
                await self._join_labels(p, now_ms)
            waiting = 0
            for p, engine in self.engines.items():
                waiting += len(self._labels.get(p, ()))
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
            self.metrics.labels_waiting.set(waiting)

    def _label_due(self, p: int, engine: Engine, record: Record, arrived: float) -> bool:
        last = self._last_event_ts.get(p)
        if (
            record.timestamp_ms is not None
            and last is not None
            and last > record.timestamp_ms + LABEL_CLOCK_SKEW_MS
        ):
            return True  # the events partition is past the time the label was sent
        hw = self._highwater(self.topics.events, p)
        if hw is not None and engine.watermark + 1 >= hw:
            return True  # caught up: the event is processed, or will never come
        return time.monotonic() - arrived >= LABEL_WAIT_S

    async def _join_labels(self, p: int, now_ms: float) -> None:
        queue = self._labels.get(p)
        engine = self.engines.get(p)
        if not queue or engine is None:
            return
        joined = False
        while queue:
            record, arrived = queue[0]
            if len(queue) <= self._max_waiting and not self._label_due(p, engine, record, arrived):
                break
            queue.popleft()
            if not joined:
                self._dirty.add(p)
                joined = True
            self._run(
                p, record.offset, "label", engine.process_label, record.value, record.offset, now_ms
            )
        if joined:
            await self._publish(p, engine, "periodic")

    def _run(self, p: int, offset: int, kind: str, call: Callable[..., None], *args: Any) -> None:
        # The engine turns bad input into dead letters; an exception here is a bug. Log it with
        # the record's position and go on with the next record rather than crash-loop on it.
        started = time.perf_counter()
        try:
            call(*args)
        except Exception:
            self._processing_error(p, kind, offset)
        self._observe(kind)(time.perf_counter() - started)

    def _run_events(self, p: int, engine: Engine, records: list[Record], now_ms: float) -> None:
        # _run, inlined for the per-record hot path: one call less and no label lookup per event.
        process, observe, clock = engine.process, self._observe("event"), time.perf_counter
        for r in records:
            started = clock()
            try:
                process(r.value, r.offset, now_ms)
            except Exception:
                self._processing_error(p, "event", r.offset)
            observe(clock() - started)

    def _processing_error(self, p: int, kind: str, offset: int) -> None:
        self.metrics.errors.labels(kind).inc()
        log.exception("partition %d: processing the %s at offset %d", p, kind, offset)

    def _observe(self, kind: str) -> Callable[[float], None]:
        # The histogram child of a kind, looked up once (labels() costs about as much as
        # observe()); created on first use, as before, so /metrics shows only kinds seen.
        observe = self._observers.get(kind)
        if observe is None:
            observe = self._observers[kind] = self.metrics.latency.labels(kind).observe
        return observe

    def _warn_unowned(self, topic: str, p: int) -> None:
        # Records of a partition revoked while they were in flight: its new owner replays them.
        if (topic, p) not in self._unowned_warned:
            self._unowned_warned.add((topic, p))
            log.info("skipping records of %s[%d]: not owned by this worker (now)", topic, p)

    # ------------------------------------------------------------------ outputs and snapshots

    async def _publish(self, p: int, engine: Engine, reason: str) -> None:
        out = engine.outputs.drain()
        send_many = self.publisher.send_many
        topics = self.topics
        partition_key = str(p).encode()
        for record in out.alerts:
            log.info(
                "partition %d: %s %s on %s (%s), action: %s",
                p,
                record.get("detector"),
                record.get("kind"),
                record.get("signal"),
                record.get("index"),
                record.get("action"),
            )
        try:
            if out.predictions:
                await send_many(
                    topics.predictions,
                    [
                        (str(r["id"] if r["key"] is None else r["key"]).encode(), encode(r))
                        for r in out.predictions
                    ],
                )
            if out.alerts:
                await send_many(topics.alerts, [(partition_key, encode(r)) for r in out.alerts])
            if out.dead_letters:
                # Counted once the broker has them (driftline_dead_letters_total); each one is
                # bounded in size (learners.events.dead_letter), so none is too large to publish.
                counter = self.metrics.dead_letters
                await send_many(
                    topics.dead_letter,
                    [(partition_key, encode(r)) for r in out.dead_letters],
                    [counter.labels(str(p), r["reason"]).inc for r in out.dead_letters],
                )
        except OutputTooLarge as exc:  # (a record sent again after a failed delivery)
            log.error("partition %d: an output record was dropped: %s", p, exc)
        for snap in out.snapshots:
            await self._publish_snapshot(p, snap, reason)
        self._dirty.discard(p)

    async def _publish_snapshot(self, p: int, snap: Mapping[str, Any], reason: str) -> None:
        # In chunks under rotating keys, then the floor: stream.snapshot_keeper.
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
                self._labels.pop(p, None)
                if engine is None:
                    continue
                await self._final_snapshot(p, engine, "revoked")
                if p in self._dirty:  # ahead of its outputs: only a snapshot may bring it back
                    self._dirty.discard(p)
                else:
                    self._parked[p] = engine
            self.metrics.assigned.set(len(self.engines))

    def begin_assignment(self, partitions: Iterable[int]) -> None:
        """Call first thing on assignment (before any await): records of ``partitions`` wait."""
        self._assigning = set(partitions)
        self._ready.clear()

    def end_assignment(self) -> None:
        """Call when the engines are in place and the consumer has been moved to their watermarks
        (also after a failure: the app crashes then, and nothing was committed)."""
        self._assigning = set()
        self._ready.set()

    async def on_assigned(
        self, partitions: Iterable[int], snapshots: Mapping[int, Any]
    ) -> dict[int, tuple[int, int]]:
        """Take over ``partitions``; return where to resume: ``{p: (events, labels offset)}``."""
        async with self._lock:
            held = {**self._parked, **self.engines}
            for p in self._dirty:
                held.pop(p, None)
            self._dirty.clear()
            self.engines, self._parked = {}, {}
            self._labels.clear()
            self._last_event_ts.clear()
            self._unowned_warned.clear()
            resume = {}
            for p in sorted(partitions):
                engine = self._recover(p, held.get(p), snapshots.get(p, []))
                if engine is None:  # held: no engine, nothing committed
                    continue
                self.engines[p] = engine
                self._labels[p] = deque()
                resume[p] = (engine.watermark + 1, engine.label_watermark + 1)
            for p in set(self._published) - set(self.engines):
                del self._published[p]
            self.metrics.assigned.set(len(self.engines))
            await self.keeper.after_recovery(set(partitions))  # hold alerts, floors
            return resume

    def _recover(self, p: int, held: Engine | None, records: Any) -> Engine | None:
        """The engine ``p`` resumes with: the newest snapshot that verifies and is not below the
        floor, the engine in memory, or a fresh one; ``None`` when the partition is held
        (snapshots exist but none may be restored: see stream.snapshot_keeper)."""
        return self.keeper.recover(p, held, records)

    async def shutdown(self) -> None:
        """Final snapshots of every owned partition (clean shutdown), then flush."""
        async with self._lock:
            for p, engine in sorted(self.engines.items()):
                await self._final_snapshot(p, engine, "shutdown")
            await self.publisher.flush()

    def status(self) -> dict[str, Any]:
        """What ``/health`` shows."""
        return {
            "status": "ok",
            "app_id": self.app_id,
            "assigned": sorted(self.engines),
            "partitions": {
                str(p): {
                    "watermark": e.watermark,
                    "label_watermark": e.label_watermark,
                    "events": e.counters["events"],
                    "learned": e.counters["learned"],
                    "labels_waiting": len(self._labels.get(p, ())),
                }
                for p, e in sorted(self.engines.items())
            },
        }
