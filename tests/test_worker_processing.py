"""The live worker's hand-over and processing, in memory (no broker): handing records over does not
wait for their processing, and the processing task frees the worker between slices, so what is
fetched meanwhile is handed over (and starts its wait for labels) while earlier slices are
processed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from in_memory_run import KEY, T0_MS, AckingPublisher, NoFloors

from driftline.label_order import Record
from driftline.live.metrics import WorkerMetrics
from driftline.live.processing import PUBLISH_EVERY
from driftline.live.worker import Worker
from driftline.offline.datasets import get_dataset
from driftline.settings import load_settings


class SlowPublisher(AckingPublisher):
    """A broker that takes every request after ``delay`` seconds (and counts the predictions)."""

    def __init__(self, delay: float = 0.005) -> None:
        self.delay = delay
        self.predictions = 0

    async def send_many(self, topic: str, records: Any, acks: Any = None) -> None:
        await asyncio.sleep(self.delay)
        if topic == "predictions":
            self.predictions += len(records)
        await super().send_many(topic, records, acks)


def events(first: int, count: int) -> list[Record]:
    """Events with inline labels, stamped 1 ms apart (their labels need not wait for anything)."""
    stream = list(get_dataset("sea-abrupt").events(limit=first + count))[first:]
    return [
        Record(0, first + i, T0_MS + first + i, json.dumps(e).encode())
        for i, e in enumerate(stream)
    ]


async def _worker(
    publisher: AckingPublisher, max_idle_ms: int = 0, labels_highwater: int = 0
) -> Worker:
    # By default no waiting at the head for labels: every event may go once it is handed over,
    # the labels partition read to its end (none of its records read: labels_highwater 0).
    settings = load_settings(environ={"DRIFTLINE_LABELS__MAX_IDLE_MS": str(max_idle_ms)})
    worker = Worker(
        settings,
        KEY,
        publisher,  # type: ignore[arg-type]
        WorkerMetrics(dict),
        lambda topic, p: labels_highwater if topic == settings.kafka.topics.labels else None,
    )
    worker.keeper.floor_store = NoFloors()
    await worker.on_assigned([0], {})
    return worker


def test_a_hand_over_returns_before_its_records_are_processed() -> None:
    async def run() -> tuple[int, int]:
        publisher = SlowPublisher()
        worker = await _worker(publisher)
        await worker.handle_events(events(0, 1200))
        handed = worker.engines[0].counters["events"]
        await worker.process_ready()
        return handed, worker.engines[0].counters["events"]

    handed, processed = asyncio.run(run())
    assert handed == 0  # in the label order, not yet processed
    assert processed == 1200


def test_records_fetched_during_processing_are_handed_over_between_slices() -> None:
    async def run() -> tuple[int, int, int]:
        publisher = SlowPublisher()
        worker = await _worker(publisher)
        await worker.handle_events(events(0, 5 * PUBLISH_EVERY))
        processing = asyncio.ensure_future(worker.process_ready())
        for _ in range(1000):  # until the first slice was processed (bounded)
            if worker.engines[0].counters["events"]:
                break
            await asyncio.sleep(0.001)
        await worker.handle_events(events(5 * PUBLISH_EVERY, 100))
        # Handed over while the backlog before it is still being processed, not after it.
        processed_at_hand_over = worker.engines[0].counters["events"]
        await processing
        await worker.process_ready()
        return processed_at_hand_over, worker.engines[0].counters["events"], publisher.predictions

    at_hand_over, processed, published = asyncio.run(run())
    assert 0 < at_hand_over < 5 * PUBLISH_EVERY
    assert processed == published == 5 * PUBLISH_EVERY + 100


def test_a_fetch_landing_between_the_looks_never_makes_caught_up_newer() -> None:
    # The consumer thread updates a partition's highwater, then its fetch time, from each fetch
    # response, while the worker looks at both. A response that lands between the worker's two
    # looks (100 events read to the end at 1,000 ms; the new fetch at 2,000 ms brought 50 more)
    # must not make "read to the end as of 2,000 ms".
    state = {"hw": 100, "at": 1_000.0}
    looks: list[str] = []

    def look(what: str) -> Any:
        value = state[what]
        looks.append(what)
        if len(looks) == 1:
            state.update(hw=150, at=2_000.0)  # the fetch response lands now
        return value

    async def run() -> float | None:
        settings = load_settings(environ={"DRIFTLINE_LABELS__MAX_IDLE_MS": "0"})
        worker = Worker(
            settings,
            KEY,
            AckingPublisher(),  # type: ignore[arg-type]
            WorkerMetrics(dict),
            lambda topic, p: look("hw"),
            fetched_at=lambda topic, p: look("at"),
        )
        worker.keeper.floor_store = NoFloors()
        await worker.on_assigned([0], {})
        await worker.handle_events(events(0, 100))
        looks.clear()
        return worker._caught_up_at(settings.kafka.topics.events, 0)

    claimed = asyncio.run(run())
    assert len(looks) == 2
    assert claimed is None or claimed <= 1_000.0, f"caught up as of {claimed} ms"


def test_events_waiting_at_the_head_go_when_their_wait_is_over_without_a_tick() -> None:
    """An event handed over waits ``labels.max_idle_ms`` for a label on its way; when nothing
    else is handed over, the processing task looks again once that wait can be over, not only
    at the worker's next tick (50 ms later, on a backlog: a worker idle with the wait over)."""

    async def run() -> tuple[int, int, float]:
        worker = await _worker(SlowPublisher(delay=0), max_idle_ms=200)
        processing = asyncio.ensure_future(worker.process_forever())
        try:
            await worker.handle_events(events(0, 200))  # wakes the task: nothing may go yet
            await asyncio.sleep(0)  # the task's first look
            at_first_look = worker.engines[0].counters["events"]
            waited = worker._head_wait_s() or 0.0
            for _ in range(300):  # no tick, no hand-over: bounded at 3 s
                if worker.engines[0].counters["events"] == 200:
                    break
                await asyncio.sleep(0.01)
            return at_first_look, worker.engines[0].counters["events"], waited
        finally:
            processing.cancel()

    at_first_look, processed, waited = asyncio.run(run())
    assert at_first_look == 0  # still waiting for labels that might be on their way
    assert 0 < waited <= 0.205  # the rest of the 200 ms, plus the look after it
    assert processed == 200


def test_a_stop_that_comes_with_a_wake_up_ends_the_processing_task() -> None:
    """Events wait at the head (a timer is armed for their wait); a hand-over or tick and the
    worker's stop land in one turn of the loop: the task must end on that one cancel."""

    async def run() -> bool:
        worker = await _worker(SlowPublisher(delay=0), max_idle_ms=60_000)
        await worker.handle_events(events(0, 10))
        task = asyncio.ensure_future(worker.process_forever())
        await asyncio.sleep(0.05)  # its first look is over: it waits for the wake or the timer
        worker._wake.set()
        task.cancel()
        for _ in range(100):  # bounded: 1 s
            if task.done():
                break
            await asyncio.sleep(0.01)
        done = task.done()
        task.cancel()  # (so that a failing run still ends)
        return done

    assert asyncio.run(run())


def test_events_that_wait_for_lagging_labels_are_not_polled_for() -> None:
    """Events held back by labels behind them (not by labels.max_idle_ms) are looked at on the
    next hand-over or tick, as before: the processing task does not poll for them."""

    async def run() -> tuple[float | None, float | None, int]:
        # The labels partition holds 5 records none of which was read: never caught up.
        worker = await _worker(AckingPublisher(), labels_highwater=5)
        await worker.handle_events(events(0, 10))
        await worker.process_ready()
        soon = worker._head_wait_s()
        await asyncio.sleep(0.07)
        await worker.process_ready()
        return soon, worker._head_wait_s(), worker.engines[0].counters["events"]

    soon, later, processed = asyncio.run(run())
    assert processed == 0  # they wait for the labels
    assert soon is not None and soon <= 0.006  # their wait may just have ended: looked at again
    assert later is None  # 70 ms past it: they wait for something else


def test_records_handed_over_again_go_into_the_order_once() -> None:
    # After the seek to a snapshot's watermarks the consumer hands over again records it had
    # handed over before the seek (fetched from the start of the partition): they must not
    # count twice in the order (their times would hold later records back, or let them go).
    async def run() -> tuple[int, int, int]:
        publisher = SlowPublisher(delay=0)
        worker = await _worker(publisher)
        await worker.handle_events(events(0, 100))
        await worker.handle_events(events(60, 100))  # 60..99 again, then 100..159
        waiting = len(worker._order[0].events.queue)
        await worker.process_ready()
        return waiting, worker.engines[0].counters["duplicates"], publisher.predictions

    waiting, duplicates, predicted = asyncio.run(run())
    assert waiting == 160
    assert duplicates == 40
    assert predicted == 160
