"""The ``@app.agent`` functions of ``driftline serve``, driven in memory (no broker).

Faust's documented test style: ``agent.test_context()`` runs an agent on an in-memory channel and
``await agent.put(value)`` returns once the agent has yielded it (here: once the worker has the
chunk). The fast delivery's side of the channel (:class:`driftline.live.app.ChunkFeed`) is driven too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import faust
import pytest

from driftline.label_order import Record
from driftline.learners.events import TOMBSTONE
from driftline.live.agents import Chunk, ChunkFeed, declare_agents, drain


class RecordingWorker:
    """Stands in for driftline.live.worker.Worker: records what each handler got, in order."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.calls: list[tuple[str, list[Record]]] = []
        self.delay = delay
        self.fail_on = fail_on

    async def _handle(self, kind: str, records: Sequence[Record]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_on is not None and records[0].offset == self.fail_on:
            raise RuntimeError(f"a bug at offset {self.fail_on}")
        self.calls.append((kind, list(records)))

    async def handle_events(self, records: Sequence[Record]) -> None:
        await self._handle("events", records)

    async def handle_labels(self, records: Sequence[Record]) -> None:
        await self._handle("labels", records)


def consumed(partition: int, offsets: range, *, timestamp: int | None = 1000) -> list[Any]:
    """aiokafka ConsumerRecord look-alikes (what the fast delivery hands over)."""
    return [
        SimpleNamespace(
            partition=partition, offset=o, timestamp=timestamp, value=b'{"id": "%d"}' % o
        )
        for o in offsets
    ]


def offsets(calls: list[tuple[str, list[Record]]], kind: str) -> list[list[int]]:
    return [[r.offset for r in recs] for k, recs in calls if k == kind]


APPS: list[faust.App] = []


@pytest.fixture(autouse=True)
def close_apps() -> Iterator[None]:
    yield
    while APPS:
        # A stream's first step creates the app's consumer, whose thread makes an event loop that
        # only a started consumer closes (these never start: no broker).
        consumer = APPS.pop()._consumer  # type: ignore[attr-defined]
        if consumer is not None:
            consumer._thread.thread_loop.close()


def new_app(name: str) -> faust.App:
    # Inside a running loop: an app built outside one makes its own (never closed).
    asyncio.get_running_loop()
    app = faust.App(name, autodiscover=False, value_serializer="raw", key_serializer="raw")
    APPS.append(app)
    return app


def setup(
    name: str, worker: RecordingWorker, maxsize: int = 4, chunk_size: int = 500
) -> tuple[faust.App, ChunkFeed, ChunkFeed, Any, Any]:
    app = new_app(name)
    events, labels = ChunkFeed(app, chunk_size, maxsize), ChunkFeed(app, chunk_size, maxsize)
    consume_events, consume_labels = declare_agents(app, worker, events, labels)
    return app, events, labels, consume_events, consume_labels


def test_agents_hand_each_topics_chunks_to_the_worker_in_order() -> None:
    worker = RecordingWorker()

    async def run() -> list[Any]:
        _, _, _, consume_events, consume_labels = setup("t-agents-order", worker)
        yielded = []
        async with consume_events.test_context() as agent:
            for start in (0, 3, 6):
                yielded.append(await agent.put(Chunk(consumed(1, range(start, start + 3)))))
        async with consume_labels.test_context() as agent:
            await agent.put(Chunk(consumed(1, range(0, 2), timestamp=0)))
            await agent.put(Chunk(consumed(1, range(2, 4), timestamp=None)))
        return yielded

    asyncio.run(run())
    assert offsets(worker.calls, "events") == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert offsets(worker.calls, "labels") == [[0, 1], [2, 3]]
    # aiokafka's records become the engine's: timestamps in ms, 0 and None meaning none.
    first_event = worker.calls[0][1][0]
    assert first_event == Record(1, 0, 1000, b'{"id": "0"}')
    assert {r.timestamp_ms for _, recs in worker.calls[3:] for r in recs} == {None}


def test_a_tombstone_reaches_the_worker_as_the_tombstone_marker() -> None:
    worker = RecordingWorker()
    record = SimpleNamespace(partition=0, offset=7, timestamp=5, value=None)

    async def run() -> None:
        _, _, _, consume_events, _ = setup("t-agents-tombstone", worker)
        async with consume_events.test_context() as agent:
            await agent.put(Chunk([record]))

    asyncio.run(run())
    assert worker.calls == [("events", [Record(0, 7, 5, TOMBSTONE)])]


def test_a_chunk_from_before_a_rebalance_is_skipped_and_counted_done() -> None:
    worker = RecordingWorker()

    async def run() -> None:
        app, _, _, consume_events, _ = setup("t-agents-stale", worker)
        async with consume_events.test_context() as agent:
            app.consumer_generation_id = 3
            await agent.put(Chunk(consumed(0, range(0, 2)), generation=2, number=1))
            await agent.put(Chunk(consumed(0, range(0, 2)), generation=3, number=2))

    asyncio.run(run())
    assert offsets(worker.calls, "events") == [[0, 1]]  # the current generation's only


def test_a_failing_worker_crashes_the_agent_rather_than_skip_the_chunk() -> None:
    worker = RecordingWorker(fail_on=3)

    async def run() -> None:
        _, _, _, consume_events, _ = setup("t-agents-crash", worker)
        async with consume_events.test_context() as agent:
            await agent.put(Chunk(consumed(0, range(0, 3))))
            await agent.put(Chunk(consumed(0, range(3, 6))))

    with pytest.raises(RuntimeError, match="a bug at offset 3"):
        asyncio.run(run())
    assert offsets(worker.calls, "events") == [[0, 1, 2]]


def test_handed_over_chunks_flow_through_a_bounded_channel_in_order_and_drain() -> None:
    """The fast delivery's side: hand_over() waits while the channel is full; records join a
    chunk still waiting (up to the chunk size); drain() returns once the agent is done with every
    chunk handed over (what a stopping worker waits for)."""
    worker = RecordingWorker(delay=0.002)

    async def run() -> tuple[bool, bool, bool]:
        _, events, _, consume_events, _ = setup("t-agents-feed", worker, 2, chunk_size=10)
        async with consume_events.test_context(channel=events.channel):
            await asyncio.sleep(0)
            settled_before = events.settled()
            for start in range(0, 50, 5):
                await events.hand_over(consumed(2, range(start, start + 5)))
            busy = not events.settled()
            drained = await drain([events], timeout=5.0)
            return settled_before, busy, drained

    settled_before, busy, drained = asyncio.run(run())
    assert settled_before and busy and drained
    assert [o for chunk in offsets(worker.calls, "events") for o in chunk] == list(range(50))
    sizes = [len(chunk) for chunk in offsets(worker.calls, "events")]
    assert max(sizes) == 10 and sum(sizes) == 50  # joined, never beyond the chunk size


def test_records_do_not_join_a_chunk_the_agent_has_taken_or_of_another_partition() -> None:
    worker = RecordingWorker()

    async def run() -> None:
        _, events, _, consume_events, _ = setup("t-agents-join", worker, chunk_size=100)
        async with consume_events.test_context(channel=events.channel):
            await events.hand_over(consumed(0, range(0, 3)))
            await events.hand_over(consumed(1, range(0, 3)))  # another partition: its own
            await events.hand_over(consumed(1, range(3, 5)))  # joins the waiting one
            assert await drain([events], timeout=5.0)
            await events.hand_over(consumed(1, range(5, 7)))  # the last one was taken
            assert await drain([events], timeout=5.0)

    asyncio.run(run())
    assert [(recs[0].partition, [r.offset for r in recs]) for _, recs in worker.calls] == [
        (0, [0, 1, 2]),
        (1, [0, 1, 2, 3, 4]),
        (1, [5, 6]),
    ]


def test_a_rebalance_drops_waiting_chunks_without_breaking_the_hand_over() -> None:
    """Faust empties the agents' queues on a rebalance and cancels a put waiting for room: the
    hand-over takes that as the chunk dropped (it is fetched again), not as its own cancel."""
    worker = RecordingWorker()

    async def run() -> tuple[bool, bool]:
        app = new_app("t-agents-rebalance")
        feed = ChunkFeed(app, 10, maxsize=1)
        subscriber = feed.channel.clone(is_iterator=True)  # a reader that never reads
        app.flow_control.resume()
        await feed.hand_over(consumed(0, range(0, 2)))  # fills the queue
        # (another partition's: it cannot join the waiting chunk)
        waiting = asyncio.ensure_future(feed.hand_over(consumed(1, range(0, 2))))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        app.flow_control.suspend()  # as Faust does on revocation
        app.flow_control.clear()
        app.consumer_generation_id += 1
        await asyncio.wait_for(waiting, 1.0)  # returns, does not raise
        return feed.settled(), subscriber.queue.empty()

    # What was handed over belongs to the old generation: nothing left to wait for.
    assert asyncio.run(run()) == (True, True)
    assert worker.calls == []
