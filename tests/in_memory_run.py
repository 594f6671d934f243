"""A short run of the live worker in memory (no broker) and the ``/metrics`` text it then serves.

The tests of metric names (``tests/test_metric_names.py``) and of the Grafana dashboard's queries
(``tests/test_grafana.py``) check what the service really exposes, so they take it from here and
not from a list written by hand. The run has a drift (sea-abrupt, partition 0, labels inline),
late labels on the labels topic (partition 1), a corrupt record (a dead letter), periodic and
shutdown snapshots.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from prometheus_client import generate_latest

from driftline.label_order import Record
from driftline.live.metrics import WorkerMetrics
from driftline.live.worker import Worker
from driftline.offline.datasets import get_dataset
from driftline.settings import load_settings

KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0")
EVENTS = 10_000  # per partition: sea-abrupt drifts at 5,000; its incident closes at 9,141
T0_MS = 1_700_000_000_000


class AckingPublisher:
    """Takes every record at once, as a broker that acknowledges everything would."""

    async def send(self, topic: str, key: Any, value: bytes, headers: Any = None, ack: Any = None):
        if ack is not None:
            ack()

    async def send_many(self, topic: str, records: Any, acks: Any = None) -> None:
        for i, (key, value) in enumerate(records):
            await self.send(topic, key, value, ack=acks[i] if acks is not None else None)

    async def flush(self) -> None:
        pass


class NoFloors:
    """A snapshot floor store that keeps nothing (no broker)."""

    def commit(self, p: int, floor: Any) -> None:
        pass

    def close(self) -> None:
        pass


async def run(keep: tuple[int, ...] = (0, 1)) -> WorkerMetrics:
    """The run; ``keep``: the partitions a rebalance at the end leaves this worker."""
    settings = load_settings(environ={"DRIFTLINE_SNAPSHOT__EVERY_EVENTS": "2000"})
    events, labels = settings.kafka.topics.events, settings.kafka.topics.labels
    stream = list(get_dataset("sea-abrupt").events(limit=EVENTS))
    inline = [Record(0, i, T0_MS + i, json.dumps(e).encode()) for i, e in enumerate(stream)]
    inline.append(Record(0, EVENTS, T0_MS + EVENTS, b"{not json"))
    late = [
        Record(1, i, T0_MS + i, json.dumps({"id": e["id"], "x": e["x"]}).encode())
        for i, e in enumerate(stream)
    ]
    # Each label 50 events after its event; the last 50 predictions stay waiting.
    answers = [
        Record(1, i, T0_MS + i + 50, json.dumps({"id": e["id"], "y": e["y"]}).encode())
        for i, e in enumerate(stream[:-50])
    ]
    ends = {(events, 0): len(inline), (events, 1): len(late), (labels, 0): 0}
    ends[(labels, 1)] = len(answers)
    # The collector reads the engines the worker owns at scrape time, as driftline.live.app wires it.
    metrics = WorkerMetrics(lambda: worker.engines)
    worker = Worker(settings, KEY, AckingPublisher(), metrics, lambda t, p: ends.get((t, p)))  # type: ignore[arg-type]
    worker.keeper.floor_store = NoFloors()
    await worker.on_assigned([0, 1], {})
    await worker.handle_labels(answers)
    await worker.handle_events(inline + late)
    await worker.tick()
    await worker.process_ready()
    if keep != (0, 1):
        await worker.on_revoked([0, 1])  # eager rebalancing: all revoked, then assigned anew
        await worker.on_assigned(keep, {})
    await worker.shutdown()
    return metrics


@functools.cache
def exposition() -> str:
    """``/metrics`` after the run (the Prometheus text format, as a scrape gets it)."""
    return generate_latest(asyncio.run(run()).registry).decode()


def families(text: str) -> dict[str, str]:
    """``{name: type}`` of every metric family in an exposition, as its ``# TYPE`` lines name it
    (a counter's name ends in ``_total`` there, whatever the code declared)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            found[name] = kind
    return found
