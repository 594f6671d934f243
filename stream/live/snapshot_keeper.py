"""The worker's side of snapshot trust: restore or hold a partition, publish snapshots in chunks,
keep the floor (:mod:`driftline.live.snapshot_floor`), count and log every refusal, alert on a hold.

A partition is **held** when snapshots (or a floor) exist for it but none may be restored: it gets
no engine and is not fetched, nothing is committed, so nothing is lost. The worker says so at
ERROR with what to do, counts it (``driftline_partitions_held``), and publishes a
``snapshot_refused`` record on the alerts topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from driftline.learners.engine import Engine
from driftline.live.publisher import OutputTooLarge, Publisher, encode
from driftline.live.recovery import as_snapshots, restore_newest
from driftline.live.snapshot_floor import Floor, FloorStore
from driftline.live.snapshot_records import Refusal, chunk_records, snapshot_key

if TYPE_CHECKING:
    from driftline.live.metrics import WorkerMetrics
    from driftline.settings import Settings, TopicsConfig

log = logging.getLogger("driftline.worker")


def what_to_do(partition: int) -> str:
    return (
        f"if the snapshots were signed with another key, set that key in $DRIFTLINE_SNAPSHOT_KEY "
        f"(or $DRIFTLINE_SNAPSHOT_KEY_FILE) and restart; to start partition {partition} afresh "
        f"from the beginning of its events on purpose, run `driftline snapshots reset "
        f"--partition {partition} --yes` and restart (see `driftline snapshots list`)"
    )


class KeeperHost(Protocol):
    """What the keeper uses of its worker (:class:`driftline.live.worker.Worker`)."""

    settings: Settings
    app_id: str
    topics: TopicsConfig
    key: bytes
    publisher: Publisher
    metrics: WorkerMetrics
    #: partition -> (watermark, label watermark) of the snapshot on the topic
    _published: dict[int, tuple[int, int]]


class SnapshotKeeper:
    """Recovery and publication of one worker's snapshots."""

    def __init__(self, worker: KeeperHost) -> None:
        self.worker = worker
        self.floors: dict[int, int] = {}  # the highest sequence restored or published here
        self.held: dict[int, str] = {}  # partition -> why
        self.floor_store: Any = None  # a FloorStore, made on first use (tests put a fake here)
        self._to_commit: dict[int, Floor] = {}
        self._committing: asyncio.Task[None] | None = None  # floors committed beside the work
        self._alerts: list[tuple[int, str]] = []

    # ------------------------------------------------------------------ recovery

    def recover(self, p: int, held: Engine | None, records: Any) -> Engine | None:
        """The engine partition ``p`` resumes with, or ``None``: held (see the module)."""
        w = self.worker
        self.held.pop(p, None)
        found = as_snapshots(records, p, w.key)
        mine = self.floors.get(p)
        current = found.floor
        stale = current is None or (
            isinstance(current, Floor) and mine is not None and mine > current.sequence
        )
        if mine is not None and stale:
            found.floor = Floor(mine)

        def refuse(refusal: Refusal) -> None:
            w.metrics.snapshots_refused.labels(str(p)).inc()
            log.error(
                "partition %d: REFUSED the snapshot at %s offset %d (key %s): %s; not loaded",
                p,
                w.topics.snapshots,
                refusal.offset,
                refusal.key,
                refusal.reason,
            )

        in_memory = None
        if held is not None:
            in_memory = (held.counters["snapshots"], held.watermark, held.label_watermark)
        choice = restore_newest(found, w.key, w.settings, p, in_memory=in_memory, refuse=refuse)
        if choice.engine is not None and choice.restored is not None:
            engine, restored = choice.engine, choice.restored
            w.metrics.recoveries.labels("snapshot").inc()
            w._published[p] = (engine.watermark, engine.label_watermark)
            self._remember(p, Floor(restored.sequence, engine.watermark))
            log.info(
                "partition %d: restored the snapshot at %s offset %d (sequence %d, %d chunk(s)): "
                "watermark %d, label watermark %d, learned %d; resuming at offset %d",
                p,
                w.topics.snapshots,
                restored.offset,
                restored.sequence,
                restored.chunks,
                engine.watermark,
                engine.label_watermark,
                engine.counters["learned"],
                engine.watermark + 1,
            )
            return engine
        if choice.held:
            self._hold(p, choice.held, len(choice.refusals))
            return None
        if not choice.fresh and held is not None:
            w.metrics.recoveries.labels("memory").inc()
            log.info("partition %d: kept in memory (watermark %d)", p, held.watermark)
            return held
        return self._fresh(p, found.floor if isinstance(found.floor, Floor) else None)

    def _fresh(self, p: int, floor: Floor | None) -> Engine:
        w = self.worker
        w._published.pop(p, None)
        owner, warm = w.settings.service.app_id, w.settings.service.warm_start
        key = snapshot_key(w.app_id, p, 0)
        if warm:
            # Verified at start (driftline serve); read again here, as a partition may be
            # assigned long after.
            engine = Engine.warm_start(
                Path(warm).read_bytes(), w.key, w.settings, partition=p, owner=owner
            )
            w.metrics.recoveries.labels("warm").inc()
            log.info(
                "partition %d: no snapshot under %s...: warm start from %s (model version %d), "
                "from the beginning of %s",
                p,
                key,
                warm,
                engine.header()["model_version"],
                w.topics.events,
            )
        else:
            engine = Engine(w.settings, partition=p, snapshot_key=w.key, owner=owner)
            w.metrics.recoveries.labels("fresh").inc()
        if floor is not None and floor.reset:
            # After `driftline snapshots reset`: the new lineage continues above every old one.
            engine.counters["snapshots"] = max(engine.counters["snapshots"], floor.sequence - 1)
            log.warning(
                "partition %d: reset by `driftline snapshots reset`: a fresh model from the "
                "beginning of %s (snapshots continue at sequence %d)",
                p,
                w.topics.events,
                floor.sequence,
            )
        elif not warm:
            log.warning(
                "partition %d: no snapshot under %s...: a fresh model from the beginning of %s",
                p,
                key,
                w.topics.events,
            )
        return engine

    def _hold(self, p: int, why: str, refused: int) -> None:
        w = self.worker
        self.held[p] = why
        w.metrics.partitions_held.labels(str(p)).inc()
        w.metrics.recoveries.labels("held").inc()
        log.error(
            "partition %d: HELD, not restarted from scratch: %s (%d refusal(s) above). Its "
            "records are not processed by this worker until this is resolved: %s",
            p,
            why,
            refused,
            what_to_do(p),
        )
        self._alerts.append((p, why))

    def _remember(self, p: int, floor: Floor) -> None:
        if floor.sequence > self.floors.get(p, -1):
            self.floors[p] = floor.sequence
            self._to_commit[p] = floor

    async def after_recovery(self, partitions: set[int]) -> None:
        """Once the engines are in place: alert on held partitions, commit restored floors."""
        w = self.worker
        for p in set(self.held) - partitions:
            del self.held[p]
        w.metrics.held.set(len(self.held))
        alerts, self._alerts = self._alerts, []
        for p, why in alerts:
            record = {
                "kind": "snapshot_refused",
                "detector": "recovery",
                "signal": "snapshot",
                "partition": p,
                "action": "hold",
                "reason": why,
                "what_to_do": what_to_do(p),
                "ts": time.time() * 1000,
            }
            try:
                await w.publisher.send(w.topics.alerts, str(p).encode(), encode(record))
            except OutputTooLarge as exc:  # (cannot happen: a few hundred bytes)
                log.error("partition %d: the hold alert was dropped: %s", p, exc)
        await self.settle()
        await self._commit_floors()

    async def _commit_floors(self) -> bool:
        """Commit the floors waiting; False when one failed (it waits for the next try)."""
        committed = True
        for p, floor in sorted(self._to_commit.items()):
            try:
                await asyncio.to_thread(self._commit, p, floor)
            except Exception as exc:  # the in-process floor still holds; the next one retries
                log.warning(
                    "partition %d: could not commit the snapshot floor (sequence %d): %r",
                    p,
                    floor.sequence,
                    exc,
                )
                committed = False
                continue
            # Taken off only once committed (a cancelled commit stays for the next one), and
            # only if no newer floor came meanwhile.
            if self._to_commit.get(p) == floor:
                del self._to_commit[p]
        return committed

    def _commit_beside(self) -> None:
        # A periodic snapshot's floor is committed beside the processing, one commit at a time
        # (~5 ms a round trip that held the worker's lock). A floor committed late only lags,
        # as after a failed commit: recovery restores the newest snapshot that verifies
        # anyway, and the in-process floor holds at once. Final snapshots (revoked, shutdown)
        # and recoveries wait for their floors (settle()): the next owner reads them.
        if self._committing is None or self._committing.done():
            self._committing = asyncio.ensure_future(self._commit_while_pending())

    async def _commit_while_pending(self) -> None:
        while self._to_commit and await self._commit_floors():
            pass

    async def settle(self) -> None:
        """Wait for the floors being committed beside the processing."""
        committing, self._committing = self._committing, None
        if committing is not None and not committing.done():
            await committing

    def _commit(self, p: int, floor: Floor) -> None:
        if self.floor_store is None:
            self.floor_store = FloorStore(self.worker.settings, self.worker.key)
        self.floor_store.commit(p, floor)

    # ------------------------------------------------------------------ publishing

    async def publish(self, p: int, snap: Mapping[str, Any], reason: str) -> None:
        """Publish a snapshot as its chunk records; once the broker has every one, the floor."""
        w = self.worker
        header = snap["header"]
        blob: bytes = snap["blob"]
        sequence = int(header.get("sequence") or 0)
        history = int(header.get("history") or w.settings.snapshot.history)
        started = time.perf_counter()
        # Every output of the events this snapshot covers must be on the broker before it: on
        # recovery nothing at or below its watermark is processed (or predicted) again.
        await w.publisher.flush()
        common = [
            ("driftline-partition", str(p).encode()),
            ("driftline-sequence", str(sequence).encode()),
            ("driftline-watermark", str(header["watermark"]).encode()),
            ("driftline-model-version", str(header["model_version"]).encode()),
        ]
        records = chunk_records(
            w.app_id, p, sequence, history, blob, w.settings.snapshot.chunk_bytes
        )
        acked: list[int] = []
        try:
            for key, value, headers in records:
                await w.publisher.send(
                    w.topics.snapshots,
                    key.encode(),
                    value,
                    headers + common,
                    lambda: acked.append(1),
                )
            await w.publisher.flush()
        except OutputTooLarge as exc:
            acked.clear()
            log.error("partition %d: %s", p, exc)
        if len(acked) != len(records):
            w.metrics.snapshots_failed.labels(str(p)).inc()
            log.error(
                "partition %d: snapshot sequence %d (%d bytes in %d chunk(s)) NOT published: "
                "%d chunk(s) refused by %s (set snapshot.chunk_bytes below the topic's "
                "max.message.bytes); recovery uses the previous one",
                p,
                sequence,
                len(blob),
                len(records),
                len(records) - len(acked),
                w.topics.snapshots,
            )
            return
        w._published[p] = (header["watermark"], header["label_watermark"])
        self._remember(p, Floor(sequence, header["watermark"]))
        if reason == "periodic":
            self._commit_beside()
        else:
            await self.settle()
            await self._commit_floors()
        w.metrics.snapshot_seconds.labels("publish").observe(time.perf_counter() - started)
        w.metrics.snapshot_bytes.labels(str(p)).set(len(blob))
        w.metrics.snapshots.labels(reason).inc()
        log.info(
            "partition %d: snapshot published (%s): sequence %d, watermark %d, label watermark "
            "%d, model version %s, learned %d, %d bytes in %d record(s)",
            p,
            reason,
            sequence,
            header["watermark"],
            header["label_watermark"],
            header["model_version"],
            header["learned"],
            len(blob),
            len(records),
        )

    def close(self) -> None:
        if self.floor_store is not None:
            self.floor_store.close()
