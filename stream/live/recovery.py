"""Recovery: read a partition's snapshots and decide what it resumes from.

The rule (the worker's, and ``driftline snapshots list``'s mark): of the complete snapshots that
verify, the highest ``(sequence, watermark, label watermark)``, provided it is not below the
partition's floor (:mod:`driftline.live.snapshot_floor`). Every record that is not loaded for a reason
(does not verify, incomplete, copied, re-published, below the floor) is a refusal: logged and
counted by the caller. When snapshots or a floor exist but nothing may be restored, the partition
is *held*: never restarted from scratch silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from driftline.learners.engine import Engine
from driftline.learners.snapshot import SnapshotError
from driftline.live.kafka_clients import client_options, read_to_end
from driftline.live.snapshot_floor import Floor, FloorError, FloorStore
from driftline.live.snapshot_records import Assembler, Refusal, SnapshotSet, rank, snapshot_key
from driftline.live.topics import SNAPSHOT_MAX_BYTES
from driftline.settings import Settings

__all__ = ["choose", "rank", "read_snapshots", "restore_newest", "snapshot_key"]

#: Reading model-snapshots to its end on assignment must finish within this.
SNAPSHOT_READ_TIMEOUT_S = 60.0
#: Verified snapshots per partition held while reading (by rank).
SNAPSHOT_CANDIDATES = 8


@dataclass
class PartitionSnapshots:
    """What the snapshot topic and the floor say about one partition."""

    sets: list[SnapshotSet] = field(default_factory=list)  # complete, highest rank first
    refusals: list[Refusal] = field(default_factory=list)
    floor: Floor | FloorError | None = None


@dataclass
class Choice:
    """The decision for one partition: restore ``engine``, start afresh, or hold."""

    engine: Engine | None = None
    restored: SnapshotSet | None = None
    fresh: bool = False
    held: str = ""  # why, when held
    refusals: list[Refusal] = field(default_factory=list)


def choose(
    sets: list[SnapshotSet], floor: Floor | None
) -> tuple[SnapshotSet | None, list[SnapshotSet]]:
    """The set to restore by rank (verified, not below ``floor``), and the verified sets refused
    for being below the floor while ranking above any restorable one (a rollback).

    >>> def s(seq):
    ...     return SnapshotSet("k", 0, 0, str(seq), b"", seq, 0, 0, 1,
    ...                        {"sequence": seq, "watermark": seq, "label_watermark": -1}, True)
    >>> best, low = choose([s(3), s(5), s(4)], Floor(4))
    >>> best.sequence, [x.sequence for x in low]
    (5, [])
    >>> best, low = choose([s(3), s(2)], Floor(4))
    >>> best, [x.sequence for x in low]
    (None, [3])
    """
    verified = sorted((s for s in sets if s.verifies), key=lambda s: s.rank, reverse=True)
    minimum = 0 if floor is None else floor.sequence
    for s in verified:
        if s.sequence >= minimum:
            return s, []
    # Below a reset floor: abandoned on purpose, not refused.
    return None, [] if floor is None or floor.reset else verified[:1]


def restore_newest(
    snapshots: PartitionSnapshots,
    key: bytes,
    config: Settings,
    partition: int,
    *,
    in_memory: tuple[int, int, int] | None = None,
    refuse: Callable[[Refusal], None],
) -> Choice:
    """Decide for ``partition`` (``in_memory``: the rank of an engine this worker holds already;
    a snapshot must rank above it to replace it). Refusals go to ``refuse`` as they are found.

    >>> from driftline.settings import load_settings
    >>> from driftline.live.snapshot_records import Assembler, chunk_records
    >>> settings, key = load_settings(environ={}), bytes(range(32))
    >>> ours = Engine(settings, partition=0, snapshot_key=key, owner="driftline")
    >>> ours.process(b'{"id": 1, "x": {"a": 1.0}, "y": true}', offset=0)
    >>> theirs = Engine(settings, partition=0, snapshot_key=bytes(range(1, 33)), owner="driftline")
    >>> theirs.process(b'{"id": 9, "x": {"a": 2.0}, "y": true}', offset=99)
    >>> theirs.counters["snapshots"] = 4
    >>> reader = Assembler("driftline", [0], key)
    >>> for offset, engine in enumerate([ours, theirs]):
    ...     for k, value, headers in chunk_records("driftline", 0, offset + 1, 4,
    ...                                            engine.checkpoint()["blob"], 10_000):
    ...         reader.add(k, offset, value, headers)
    >>> found = PartitionSnapshots(reader.finish()[0], reader.refusals)
    >>> choice = restore_newest(found, key, settings, 0, refuse=lambda r: print(r.reason))
    refused: the signature does not verify (tampered, or signed with another key)
    >>> choice.engine.watermark, choice.restored.sequence
    (0, 1)
    """
    owner = config.service.app_id
    for refusal in snapshots.refusals:
        refuse(refusal)
    floor = snapshots.floor
    if isinstance(floor, FloorError):
        return Choice(
            held=f"{floor}: its sequence cannot be trusted (another key, or tampered)",
            refusals=list(snapshots.refusals),
        )
    refused = list(snapshots.refusals)
    sets = list(snapshots.sets)
    while True:
        best, below = choose(sets, floor)
        for s in below:
            refusal = Refusal(
                partition,
                s.key,
                s.offset,
                f"refused: sequence {s.sequence} is older than sequence "
                f"{floor.sequence if floor else '?'} that this group already restored or "
                "published (a rollback, or the newer snapshots were deleted)",
            )
            refused.append(refusal)
            refuse(refusal)
        if best is None:
            break
        if in_memory is not None and best.rank <= in_memory:
            return Choice(refusals=refused)  # the engine in memory is at least as new
        try:
            engine = Engine.restore(best.blob, key, config, partition=partition, owner=owner)
        except SnapshotError as exc:
            refusal = Refusal(partition, best.key, best.offset, str(exc))
            refused.append(refusal)
            refuse(refusal)
            sets = [s for s in sets if s is not best]
            continue
        return Choice(engine=engine, restored=best, refusals=refused)
    if in_memory is not None and (floor is None or in_memory[0] >= floor.sequence):
        return Choice(refusals=refused)
    if floor is not None and not floor.reset:
        return Choice(
            held=f"no snapshot at or above sequence {floor.sequence} (the newest this group "
            "restored or published) verifies",
            refusals=refused,
        )
    if refused and (floor is None or not floor.reset):
        return Choice(
            held=f"none of its {len(refused)} snapshot record(s) verifies", refusals=refused
        )
    return Choice(fresh=True, refusals=refused)


def read_snapshots(
    settings: Settings,
    partitions: Iterable[int],
    key: bytes | None = None,
    timeout_s: float = SNAPSHOT_READ_TIMEOUT_S,
    keep: int = SNAPSHOT_CANDIDATES,
) -> dict[int, PartitionSnapshots]:
    """What the snapshot topic and the floor group say about this app's ``partitions``.

    Reads ``model-snapshots`` from its beginning to the end offsets seen at the start, keeping
    per partition the ``keep`` highest-ranked verified snapshots (memory stays bounded however
    many compaction has not removed yet), every refusal, and the committed floor. Blocking
    (kafka-python): run it in a thread. Raises ``TimeoutError``.
    """
    from kafka import KafkaConsumer

    wanted = set(partitions)
    if not wanted:
        return {}
    app_id = settings.service.app_id
    topic = settings.kafka.topics.snapshots
    reader = Assembler(app_id, wanted, key, keep=keep)
    chunk = settings.snapshot.chunk_bytes
    consumer = KafkaConsumer(
        client_id=f"{app_id}-snapshot-reader",
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=max(2 * SNAPSHOT_MAX_BYTES, 4 * chunk),
        fetch_max_bytes=max(4 * SNAPSHOT_MAX_BYTES, 8 * chunk),
        # kafka-python checks each record batch's CRC-32C in pure Python (~12 ms for a 20 KB
        # snapshot record: 90% of a restore's time, linear in the snapshots not yet compacted
        # away). What a snapshot needs is checked anyway, and more strictly: each set's SHA-256
        # and its signature; a damaged record is refused like a forged one.
        check_crcs=False,
        **client_options(settings),
    )

    def add(record: Any) -> None:
        reader.add(
            record.key,
            record.offset,
            record.value,
            record.headers,
            record.partition,
            record.timestamp,
        )

    try:
        read_to_end(consumer, topic, add, timeout_s=timeout_s)  # no topic yet: nothing to read
    finally:
        consumer.close()
    found = reader.finish()
    out = {p: PartitionSnapshots(found.get(p, [])) for p in wanted}
    for refusal in reader.refusals:
        out[refusal.partition].refusals.append(refusal)
    if key is not None:
        store = FloorStore(settings, key)
        try:
            for p, floor in store.read(wanted).items():
                out[p].floor = floor
        finally:
            store.close()
    return out


def as_snapshots(records: Any, partition: int, key: bytes | None) -> PartitionSnapshots:
    """``PartitionSnapshots`` as they are, or from ``[(offset, blob), ...]`` of ``partition``
    (single-record snapshots, as tests pass them)."""
    if isinstance(records, PartitionSnapshots):
        return records
    reader = Assembler(None, None, key)
    for offset, blob in records:
        reader.add(f"-:{partition}", offset, blob)
    return PartitionSnapshots(reader.finish().get(partition, []), reader.refusals)
