"""The two ``@app.agent`` functions that consume ``events`` and ``labels``, and the bounded channels
that feed them.

Faust's per-message delivery costs more than the engine, so the consumer hands the records of a
fetch to the agents in chunks of one partition (:class:`ChunkFeed`,
:func:`driftline.live.faust_internals.fast_delivery_app`); each agent takes its topic's chunks in
order and hands each to the worker. A stopping worker lets its agents finish every chunk handed
to them (:func:`drain`) before its final snapshots.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import faust

    from driftline.label_order import Record

#: Chunks waiting in an agent's channel (the fast delivery waits for room beyond that).
FEED_CHUNKS_MAX = 4
#: Longest a stopping worker waits for its agents to finish the chunks handed to them.
DRAIN_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """Records of one partition of one topic, in offset order, as the fast delivery hands them
    to an agent: aiokafka ``ConsumerRecord`` objects (``partition``, ``offset``, ``timestamp``
    in ms, ``value``)."""

    records: list[Any]
    #: The consumer group generation they were fetched in (a rebalance makes them stale).
    generation: int = 0
    #: Their place among the chunks handed to this topic's agent (1, 2, ...).
    number: int = 0


class ChunkFeed:
    """One topic's bounded channel between the fast delivery and the topic's agent, and what the
    agent has done of what was handed over (so that a stopping worker can wait for it)."""

    def __init__(self, app: faust.App, chunk_size: int, maxsize: int = FEED_CHUNKS_MAX) -> None:
        self.app = app
        self.chunk_size = chunk_size
        self.channel: faust.ChannelT[Chunk] = app.channel(maxsize=maxsize)
        self._last: Chunk | None = None  # the last chunk handed over
        self._started = 0  # the number of the last chunk the agent has taken
        self._finished = 0  # the number of the last chunk the agent is done with
        self._handing = False

    async def hand_over(self, records: list[Any]) -> None:
        """Into the channel (waits while it is full). Records of the partition of a chunk still
        waiting in the channel join it while it has room: a worker that is behind takes larger
        chunks (fewer, larger publishes), as when it read a whole fetch at a time."""
        last = self._last
        if (
            last is not None
            and last.number > self._started
            and len(last.records) + len(records) <= self.chunk_size
            and last.records[-1].partition == records[0].partition
            and self.current(last)
        ):
            last.records.extend(records)
            return
        number = last.number + 1 if last is not None else 1
        chunk = self._last = Chunk(records, self.app.consumer_generation_id, number)
        self._handing = True
        try:
            await self.channel.send(value=chunk)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not us: a rebalance emptied the agents' queues while this chunk waited for room
            # (Faust cancels the waiting puts). Dropped with them; fetched again after the seek.
        finally:
            self._handing = False

    def current(self, chunk: Chunk) -> bool:
        """No rebalance came since ``chunk`` was handed over (Faust's own check per message)."""
        return (
            chunk.generation == self.app.consumer_generation_id
            and self.app.flow_control.is_active()
        )

    def start(self, chunk: Chunk) -> list[Any]:
        """The agent takes ``chunk``: its records (no more join it)."""
        self._started = max(self._started, chunk.number)
        return chunk.records

    def finish(self, chunk: Chunk) -> None:
        """The agent is done with ``chunk`` (processed or skipped)."""
        self._finished = max(self._finished, chunk.number)

    def settled(self) -> bool:
        """Nothing handed over waits or is in progress (a stale chunk never will be processed)."""
        last = self._last
        return not self._handing and (
            last is None or self._finished >= last.number or not self.current(last)
        )


async def drain(feeds: Iterable[ChunkFeed], timeout: float = DRAIN_TIMEOUT_S) -> bool:
    """Wait until the agents of ``feeds`` are done with every chunk handed to them (False: still
    not after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(feed.settled() for feed in feeds):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


class RecordHandlers(Protocol):
    """What the agents hand their chunks to (:class:`driftline.live.worker.Worker`)."""

    async def handle_events(self, records: Sequence[Record]) -> None: ...

    async def handle_labels(self, records: Sequence[Record]) -> None: ...


def to_records(consumed: list[Any]) -> list[Record]:
    """The engine's records from aiokafka's: timestamps in ms (0 and None: none), values None for
    tombstones (the engine dead-letters TOMBSTONE as ``tombstone``; an empty value stays
    ``not_json``)."""
    from driftline.label_order import Record
    from driftline.learners.events import TOMBSTONE

    return [
        Record(
            r.partition,
            r.offset,
            r.timestamp or None,
            r.value if r.value is not None else TOMBSTONE,
        )
        for r in consumed
    ]


def declare_agents(
    app: faust.App, worker: RecordHandlers, events: ChunkFeed, labels: ChunkFeed
) -> tuple[faust.types.AgentT, faust.types.AgentT]:
    """The ``@app.agent`` functions that consume ``events`` and ``labels``: each takes its topic's
    chunks in the order they were handed over, and hands each one to ``worker``. They yield every
    chunk once it is done (what ``agent.test_context()`` records)."""

    # The worker turns bad records into dead letters: an exception is a bug, and going on would
    # skip the chunk's records. Faust's CrashingSupervisor stops the worker instead (nothing was
    # committed: a restart takes over afresh); Faust's default would restart the agent.
    from mode import CrashingSupervisor

    @app.agent(events.channel, name="driftline-events", supervisor_strategy=CrashingSupervisor)
    async def consume_events(chunks: faust.StreamT[Chunk]) -> AsyncIterator[Chunk]:
        """Events of the owned partitions, a chunk at a time, into the worker."""
        async for chunk in chunks:
            try:
                records = to_records(events.start(chunk))
                if events.current(chunk):
                    # Shielded: cancelling the agent must not cut a chunk in half.
                    await asyncio.shield(worker.handle_events(records))
            finally:
                events.finish(chunk)
            yield chunk

    @app.agent(labels.channel, name="driftline-labels", supervisor_strategy=CrashingSupervisor)
    async def consume_labels(chunks: faust.StreamT[Chunk]) -> AsyncIterator[Chunk]:
        """Late labels of the owned partitions, a chunk at a time, into the worker."""
        async for chunk in chunks:
            try:
                records = to_records(labels.start(chunk))
                if labels.current(chunk):
                    await asyncio.shield(worker.handle_labels(records))
            finally:
                labels.finish(chunk)
            yield chunk

    return consume_events, consume_labels
