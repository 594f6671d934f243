"""Recovery: read a partition's snapshot records and restore the newest one that verifies.

A snapshot whose signature does not verify is refused (logged and counted by the caller through
``refuse``), never unpickled.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from learners.engine import Engine
from learners.snapshot import SnapshotError, read_header, verify
from stream.settings import Settings
from stream.topics import SNAPSHOT_MAX_BYTES, client_options

#: Reading model-snapshots to its end on assignment must finish within this.
SNAPSHOT_READ_TIMEOUT_S = 60.0
#: Snapshots per partition considered on recovery (by rank): more only if the newest are forged.
SNAPSHOT_CANDIDATES = 8


def snapshot_key(app_id: str, partition: int) -> str:
    """The ``model-snapshots`` key of a partition's model: compaction keeps the newest."""
    return f"{app_id}:{partition}"


def _rank(header: Mapping[str, Any]) -> tuple[int, int]:
    try:
        return int(header["watermark"]), int(header["label_watermark"])
    except (KeyError, TypeError, ValueError):
        return -2, -2  # a header we cannot even rank: tried last (and it will not verify)


def restore_newest(
    records: Iterable[tuple[int, bytes]],
    key: bytes,
    config: Settings,
    partition: int,
    *,
    newer_than: tuple[int, int] | None = None,
    refuse: Callable[[int, str], None],
) -> tuple[Engine, int] | None:
    """The engine of the newest snapshot in ``records`` (``(offset, blob)``) that verifies.

    "Newest" is the highest (watermark, label watermark), then the highest offset. Candidates are
    ranked by their unverified header and verified in that order; each one that fails is passed
    to ``refuse(offset, reason)`` and skipped. With ``newer_than``, only snapshots ranked above it
    are considered (the caller holds that state already). Returns ``(engine, offset)`` or None.

    >>> from stream.settings import load_settings
    >>> settings, key = load_settings(environ={}), b"k" * 32
    >>> ours = Engine(settings, partition=0, snapshot_key=key, owner="driftline")
    >>> ours.process(b'{"id": 1, "x": {"a": 1.0}, "y": true}', offset=0)
    >>> theirs = Engine(settings, partition=0, snapshot_key=b"not our key, but long enough")
    >>> theirs.process(b'{"id": 9, "x": {"a": 2.0}, "y": true}', offset=99)
    >>> records = [(0, ours.snapshot()["blob"]), (1, theirs.snapshot()["blob"])]
    >>> engine, offset = restore_newest(
    ...     records, key, settings, 0, refuse=lambda at, why: print("refused", at, why)
    ... )
    refused 1 refused: the signature does not verify (tampered, or signed with another key)
    >>> offset, engine.watermark
    (0, 0)
    """
    ranked = []
    for offset, blob in records:
        try:
            ranked.append((_rank(read_header(blob)), offset, blob))
        except SnapshotError as exc:
            refuse(offset, str(exc))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    for rank, offset, blob in ranked:
        if newer_than is not None and rank <= newer_than:
            return None
        try:
            owner = config.service.app_id
            return Engine.restore(blob, key, config, partition=partition, owner=owner), offset
        except SnapshotError as exc:
            refuse(offset, str(exc))
    return None


def read_snapshots(
    settings: Settings,
    partitions: Iterable[int],
    key: bytes | None = None,
    timeout_s: float = SNAPSHOT_READ_TIMEOUT_S,
    keep: int = SNAPSHOT_CANDIDATES,
) -> dict[int, list[tuple[int, bytes]]]:
    """The newest snapshot records of this app's ``partitions``: ``{p: [(offset, blob), ...]}``.

    Reads ``model-snapshots`` from its beginning to the end offsets seen at the start and keeps,
    per partition, the ``keep`` highest-ranked records by their (unverified) header, so memory
    stays bounded however many snapshots compaction has not removed yet. Blocking (kafka-python):
    run it in a thread. Raises ``TimeoutError``.
    """
    from kafka import KafkaConsumer, TopicPartition

    app_id = settings.service.app_id
    wanted = {snapshot_key(app_id, p).encode(): p for p in partitions}
    best: dict[int, list[tuple[tuple[int, int], int, bytes]]] = {p: [] for p in wanted.values()}
    if not wanted:
        return {}
    topic = settings.kafka.topics.snapshots
    consumer = KafkaConsumer(
        client_id=f"{app_id}-snapshot-reader",
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * SNAPSHOT_MAX_BYTES,
        fetch_max_bytes=4 * SNAPSHOT_MAX_BYTES,
        **client_options(settings),
    )
    try:
        numbers = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, n) for n in sorted(numbers)]
        if tps:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout_s
            remaining = {tp for tp in tps if consumer.position(tp) < end[tp]}
            while remaining:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not read {topic} to its end within {timeout_s:.0f} s "
                        f"({len(remaining)} partitions left)"
                    )
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        p = wanted.get(record.key)
                        if p is None or record.value is None:  # another app, or a tombstone
                            continue
                        try:
                            # Ranked by the VERIFIED header (an HMAC, nothing unpickled): forged
                            # records claiming a huge watermark cannot crowd the valid ones out
                            # of the bounded candidates.
                            rank = _rank(
                                verify(record.value, key) if key else read_header(record.value)
                            )
                        except SnapshotError:
                            rank = (-2, -2)  # kept (if there is room) to be refused loudly
                        heapq.heappush(best[p], (rank, record.offset, record.value))
                        if len(best[p]) > keep:
                            heapq.heappop(best[p])
                remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
    return {p: [(offset, blob) for _, offset, blob in items] for p, items in best.items()}
