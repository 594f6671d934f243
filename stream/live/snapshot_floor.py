"""The snapshot floor: the highest snapshot sequence a group has restored or published, per
partition, kept where a writer of the snapshot topic cannot roll it back.

It is committed as consumer-group offset metadata under its own group, ``<app id>-snapshot-floor``
(offset: the next ``events`` offset of that snapshot, so lag tools show something true), signed
with the snapshot key. Writing the snapshot topic does not give the right to commit offsets for a
group (Kafka ACLs: WRITE on the topic vs. READ on the group), and a forged or copied metadata
string does not verify. Recovery refuses a snapshot below the floor: a re-published older one, or
a newer one deleted from the compacted topic, cannot roll a model back without a person noticing.

``driftline snapshots reset --partition P`` commits a *reset* floor: the partition then starts
afresh, and its new snapshots continue above every sequence seen before.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("driftline.snapshots")

_DOMAIN = b"driftline-snapshot-floor\n"


def floor_group(app_id: str) -> str:
    return f"{app_id}-snapshot-floor"


@dataclass(frozen=True)
class Floor:
    """No snapshot below ``sequence`` may be restored (``reset``: none need be, start afresh)."""

    sequence: int
    watermark: int = -1
    reset: bool = False


class FloorError(Exception):
    """Floor metadata that does not verify (forged, copied, or another key)."""


def encode_floor(floor: Floor, app_id: str, partition: int, key: bytes) -> str:
    """Signed metadata text.

    >>> key = bytes(range(32))
    >>> text = encode_floor(Floor(7, 99), "app", 0, key)
    >>> decode_floor(text, "app", 0, key)
    Floor(sequence=7, watermark=99, reset=False)
    >>> decode_floor(text, "app", 1, key)
    Traceback (most recent call last):
    ...
    driftline.live.snapshot_floor.FloorError: the snapshot floor of partition 1 does not verify
    """
    body = {
        "app": app_id,
        "partition": partition,
        "sequence": floor.sequence,
        "watermark": floor.watermark,
        "reset": floor.reset,
    }
    signed = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(key, _DOMAIN + signed, hashlib.sha256).hexdigest()
    return orjson.dumps({**body, "mac": mac}, option=orjson.OPT_SORT_KEYS).decode()


def decode_floor(text: str, app_id: str, partition: int, key: bytes) -> Floor:
    try:
        data = orjson.loads(text)
        mac = data.pop("mac")
        signed = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        raise FloorError(f"the snapshot floor of partition {partition} is unreadable") from None
    expected = hmac.new(key, _DOMAIN + signed, hashlib.sha256).hexdigest()
    if (
        not isinstance(mac, str)
        or not hmac.compare_digest(mac, expected)
        or data.get("app") != app_id
        or data.get("partition") != partition
    ):
        raise FloorError(f"the snapshot floor of partition {partition} does not verify")
    return Floor(int(data["sequence"]), int(data["watermark"]), bool(data["reset"]))


class FloorStore:
    """Reads and commits floors (kafka-python, blocking: call it from a thread)."""

    def __init__(self, settings: Any, key: bytes, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.key = key
        self.app_id = settings.service.app_id
        self.topic = settings.kafka.topics.events
        self.timeout_ms = int(timeout_s * 1000)
        self._consumer: Any = None

    def _client(self) -> Any:
        if self._consumer is None:
            from kafka import KafkaConsumer

            from driftline.live.kafka_clients import client_options

            self._consumer = KafkaConsumer(
                client_id=f"{self.app_id}-snapshot-floor",
                group_id=floor_group(self.app_id),
                enable_auto_commit=False,
                **client_options(self.settings),
            )
        return self._consumer

    def read(self, partitions: Iterable[int]) -> dict[int, Floor | FloorError]:
        """The committed floor of each partition that has one (a :class:`FloorError` for one
        that does not verify)."""
        from kafka import TopicPartition

        out: dict[int, Floor | FloorError] = {}
        consumer = self._client()
        for p in partitions:
            committed = consumer.committed(
                TopicPartition(self.topic, p), metadata=True, timeout_ms=self.timeout_ms
            )
            if committed is None or not committed.metadata:
                continue
            try:
                out[p] = decode_floor(committed.metadata, self.app_id, p, self.key)
            except FloorError as exc:
                out[p] = exc
        return out

    def commit(self, partition: int, floor: Floor) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        metadata = encode_floor(floor, self.app_id, partition, self.key)
        self._client().commit(
            {
                TopicPartition(self.topic, partition): OffsetAndMetadata(
                    max(0, floor.watermark + 1), metadata, -1
                )
            },
            timeout_ms=self.timeout_ms,
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
