"""The dashboard's Kafka side: follow the output topics of one consumer group into the state.

The follower reads with a consumer that has no group (``make_consumer``: partitions assigned
here), so it never joins the workers' consumer group and never moves its offsets. Alerts, dead
letters and snapshots are read from the beginning (few records; the state keeps a bounded part),
predictions from ``history`` records before the end of each partition. The workers commit no
offsets (a snapshot's watermark says where a partition resumes), so the lag shown is the events
topic's end offset against the newest events offset predicted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from driftline.live.dashboard.state import DashboardState
from driftline.live.kafka_clients import make_admin, make_consumer

log = logging.getLogger("driftline.dashboard")

#: How often the events topic's end offsets are asked for (lag), and missing topics looked for.
ENDS_EVERY_S = 2.0
POLL_MS = 300
#: A poll hands over at most this many records: the lock on the state is never held for long.
MAX_POLL_RECORDS = 2000
SNAPSHOT_CHUNK_HEADER = "driftline-chunk"
#: A Faust worker puts its web address in its group membership's metadata.
WORKER_URL = re.compile(r'"url"\s*:\s*"([^"]{1,200})"')


class Follower:
    """Feeds ``state`` (under ``lock``) from the output topics until :meth:`stop`."""

    def __init__(
        self,
        settings: Any,
        state: DashboardState,
        lock: threading.Lock,
        *,
        history: int = 20_000,
        consumer_factory: Callable[..., Any] = make_consumer,
        admin_factory: Callable[..., Any] | None = make_admin,
    ) -> None:
        topics = settings.kafka.topics
        self.settings = settings
        self.state = state
        self.lock = lock
        self.history = history
        self.events_topic = topics.events
        self.handlers: dict[str, Callable[[Any], None]] = {
            topics.predictions: self._prediction,
            topics.alerts: self._alert,
            topics.dead_letter: self._dead_letter,
            topics.snapshots: self._snapshot,
        }
        self._consumer_factory = consumer_factory
        self._admin_factory = admin_factory
        self._consumer: Any = None
        self._admin: Any = None
        self.group = settings.service.app_id
        self._stopping = threading.Event()
        self.records = 0
        self.status = "starting"

    def connect(self) -> None:
        """Make the consumer (before the page is served: an unreachable broker is one clear
        error at start, :class:`~driftline.live.kafka_clients.BrokerUnreachable`)."""
        self._consumer = self._consumer_factory(
            self.settings, client_id="driftline-dashboard", max_poll_records=MAX_POLL_RECORDS
        )
        if self._admin_factory is not None:  # who the workers are: describing a group is a read
            self._admin = self._admin_factory(self.settings, client_id="driftline-dashboard")

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Follow until :meth:`stop`; a broker that goes away is retried, never a crash."""
        from kafka.errors import KafkaError

        if self._consumer is None:
            self.connect()
        consumer = self._consumer
        try:
            assigned: set[Any] = set()
            next_check = 0.0
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + ENDS_EVERY_S
                    try:
                        assigned = self._assign_new(consumer, assigned)
                        self._update_ends(consumer)
                        self._update_workers()
                        self.status = "following" if assigned else "waiting for the topics"
                    except KafkaError as exc:
                        self.status = f"Kafka error: {exc}"
                        log.warning("dashboard: %s", self.status)
                if not assigned:
                    self._stopping.wait(0.5)
                    continue
                try:
                    batch = consumer.poll(timeout_ms=POLL_MS)
                except KafkaError as exc:
                    self.status = f"Kafka error: {exc}"
                    self._stopping.wait(1.0)
                    continue
                with self.lock:
                    for tp, records in batch.items():
                        handler = self.handlers[tp.topic]
                        for record in records:
                            handler(record)
                        self.records += len(records)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
            if self._admin is not None:
                with contextlib.suppress(Exception):
                    self._admin.close()

    def _assign_new(self, consumer: Any, assigned: set[Any]) -> set[Any]:
        """Assign the partitions of the output topics that exist now (a topic created later, or
        partitions added, join at the next check)."""
        from kafka import TopicPartition

        found = set()
        for topic in self.handlers:
            for p in consumer.partitions_for_topic(topic) or ():
                found.add(TopicPartition(topic, p))
        new = found - assigned
        if not new:
            return assigned
        consumer.assign(sorted(found))
        predictions = [tp for tp in new if self.handlers[tp.topic] == self._prediction]
        consumer.seek_to_beginning(*[tp for tp in new if tp not in predictions])
        if predictions:
            begin = consumer.beginning_offsets(predictions)
            for tp, end in consumer.end_offsets(predictions).items():
                consumer.seek(tp, max(begin[tp], end - self.history))
        return found

    def _update_ends(self, consumer: Any) -> None:
        from kafka import TopicPartition

        partitions = consumer.partitions_for_topic(self.events_topic) or ()
        ends = consumer.end_offsets([TopicPartition(self.events_topic, p) for p in partitions])
        with self.lock:
            self.state.set_end_offsets({tp.partition: end for tp, end in ends.items()})

    def _update_workers(self) -> None:
        """The members of the workers' group and the events partitions each was assigned."""
        if self._admin is None:
            return
        group = self._admin.describe_groups([self.group]).get(self.group) or {}
        workers = []
        for member in group.get("members") or ():
            assignment = member.get("member_assignment") or {}
            partitions = [
                p
                for topic in assignment.get("assigned_partitions") or ()
                if topic.get("topic") == self.events_topic
                for p in topic.get("partitions") or ()
            ]
            url = WORKER_URL.search(str(member.get("member_metadata") or ""))
            workers.append(
                {
                    "worker": url.group(1) if url else str(member.get("member_id"))[-12:],
                    "host": str(member.get("client_host", "")).lstrip("/"),
                    "partitions": sorted(partitions),
                }
            )
        with self.lock:
            self.state.set_workers(workers, str(group.get("group_state", "unknown")))

    # One handler per topic: a record that is not JSON is counted, never a crash.

    def _prediction(self, record: Any) -> None:
        self.state.add_prediction(_json(record.value), record.timestamp)

    def _alert(self, record: Any) -> None:
        self.state.add_alert(_json(record.value), record.timestamp)

    def _dead_letter(self, record: Any) -> None:
        self.state.add_dead_letter(_json(record.value), record.timestamp)

    def _snapshot(self, record: Any) -> None:
        from driftline.learners.snapshot import SnapshotError, read_header

        chunk = dict(record.headers or ()).get(SNAPSHOT_CHUNK_HEADER, b"0/1")
        if record.value is None or not chunk.startswith(b"0/"):
            return  # a tombstone, or a later chunk: the header is in chunk 0
        try:
            header = read_header(record.value)
        except (SnapshotError, ValueError, TypeError):
            return  # a chunk 0 too short to hold the header, or not a snapshot: nothing to show
        self.state.add_snapshot_header(header, record.timestamp)


def _json(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
