"""What stream/live/faust_internals.py relies on in faust-streaming and aiokafka, pinned.

Each private name it uses exists, with the signature it calls, on the installed versions; the
versions are the tested ones (and the pins of pyproject.toml); ``driftline serve`` refuses others;
the worker's consumer gets Faust's co-partitioning assignor and the short fetch wait.
"""

from __future__ import annotations

import asyncio
import inspect
import tomllib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiokafka
import aiokafka.consumer.fetcher
import faust
import pytest
from faust.assignor import PartitionAssignor
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver

from driftline.live import faust_internals
from driftline.live.faust_internals import (
    FETCH_MAX_WAIT_MS,
    TESTED_VERSIONS,
    UntestedVersionError,
    check_versions,
    fast_delivery_app,
    release_held,
    worker_consumer_settings,
)

ROOT = Path(__file__).resolve().parents[1]


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_tested_versions_are_the_pins_of_pyproject_and_the_installed_ones() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(d.split("==") for d in project["dependencies"] if "==" in d)
    assert {name: pins[name] for name in TESTED_VERSIONS} == TESTED_VERSIONS
    assert faust_internals.installed_versions() == TESTED_VERSIONS
    check_versions()  # the installed ones: no error


def test_an_untested_version_is_refused_with_the_tested_ones_named() -> None:
    with pytest.raises(UntestedVersionError) as refused:
        check_versions({"faust-streaming": "0.15.3", "aiokafka": "0.15.0"})
    message = str(refused.value)
    assert "tested with faust-streaming 0.15.3 and aiokafka 0.14.0" in message
    assert "aiokafka 0.15.0 is installed" in message
    with pytest.raises(UntestedVersionError, match=r"faust-streaming \(none\), aiokafka 1.0 are"):
        check_versions({"faust-streaming": None, "aiokafka": "1.0"})


def test_serve_refuses_to_start_on_untested_versions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftline.live.app import serve
    from driftline.settings import load_settings

    monkeypatch.setattr(
        faust_internals,
        "installed_versions",
        lambda: {"faust-streaming": "0.16.0", "aiokafka": "0.14.0"},
    )
    # Refused before anything else: no broker is needed to see it.
    assert serve(load_settings(environ={}), b"k" * 32) == 1
    err = capsys.readouterr().err
    assert err.startswith("driftline serve: the live worker is tested with faust-streaming 0.15.3")
    assert "faust-streaming 0.16.0 is installed" in err


def test_the_private_names_of_faust_exist_with_the_signatures_used() -> None:
    # The drain loop that fast_delivery_app replaces, and what it calls.
    assert inspect.iscoroutinefunction(faust_consumer.Consumer._drain_messages)
    assert parameters(faust_consumer.Consumer._drain_messages) == ["self", "fetcher"]
    assert inspect.iscoroutinefunction(faust_consumer.Consumer._wait_next_records)
    assert parameters(faust_consumer.Consumer._wait_next_records) == ["self", "timeout"]
    assert inspect.iscoroutinefunction(faust_consumer.Consumer.perform_seek)
    init = inspect.getsource(faust_consumer.Consumer.__init__)
    assert "self._read_offset = defaultdict(lambda: None)" in init
    # Pausing (the worker's flow control) is Faust's: it takes the partition out of the live set
    # of active partitions that _wait_next_records fetches for.
    pause = inspect.getsource(faust_consumer.Consumer.pause_partitions)
    assert "self._get_active_partitions().difference_update(tpset)" in pause
    # How the app gets its consumer: App._new_transport -> Transport.Consumer ->
    # Consumer._new_consumer_thread -> AIOKafkaConsumerThread._create_worker_consumer.
    assert parameters(faust.App._new_transport) == ["self"]
    assert driver.Transport.Consumer is driver.Consumer
    assert parameters(driver.Consumer._new_consumer_thread) == ["self"]
    assert parameters(driver.AIOKafkaConsumerThread._create_worker_consumer) == [
        "self",
        "transport",
    ]
    assert "fetch_max_wait_ms=1500" in inspect.getsource(
        driver.AIOKafkaConsumerThread._create_worker_consumer
    )
    assert parameters(driver.AIOKafkaConsumerThread._ensure_consumer) == ["self"]
    assert parameters(driver.Producer._ensure_producer) == ["self"]
    # Faust's stream skips a message of another generation or while the flow is suspended
    # (ChunkFeed.current makes the same check per chunk).
    aiter_source = inspect.getsource(faust.Stream._py_aiter)
    assert "message.generation_id != self.app.consumer_generation_id" in aiter_source
    assert "not self.app.flow_control.is_active()" in aiter_source
    # ... and its app stops the consumer (emptying the agents' queues) first thing in on_stop.
    on_stop = inspect.getsource(faust.App.on_stop)
    assert on_stop.index("_stop_consumer") < on_stop.index("on_before_shutdown")


def test_the_private_names_of_aiokafka_exist_with_the_signatures_used() -> None:
    assert parameters(aiokafka.AIOKafkaProducer._partition) == [
        "self",
        "topic",
        "partition",
        "key",
        "value",
        "serialized_key",
        "serialized_value",
    ]
    assert parameters(aiokafka.AIOKafkaConsumer.last_poll_timestamp) == ["self", "partition"]
    init = inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in init
    assert "self._partition_assignment_strategy = partition_assignment_strategy" in init
    # ... and they are read when the consumer starts, not only in __init__.
    consumer_source = inspect.getsource(aiokafka.AIOKafkaConsumer)
    assert "assignors=self._partition_assignment_strategy" in consumer_source
    assert "self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    # PREFETCH_BACKOFF_S: the fetcher reads its backoff whenever fetched records arrive, and
    # fetches nothing from a broker while records of one of its partitions wait within it.
    fetcher = inspect.getsource(aiokafka.consumer.fetcher.Fetcher)
    assert "backoff=self._prefetch_backoff" in fetcher
    assert "if node_id in backoff_by_nodes:" in fetcher
    # ... the fetcher exists once Faust's consumer thread has started aiokafka's consumer.
    on_start = inspect.getsource(driver.AIOKafkaConsumerThread.on_start)
    assert "await self._consumer.start()" in on_start


def test_a_fetch_response_sets_the_highwater_before_the_fetch_time() -> None:
    # The worker reads last_poll_timestamp before highwater (Processing._caught_up_at): that is
    # safe only while the fetcher writes them in this order.
    from aiokafka.consumer.fetcher import Fetcher

    source = inspect.getsource(Fetcher)
    highwater = source.index("tp_state.highwater = highwater")
    assert highwater < source.index("tp_state.timestamp = now_ms", highwater)
    assert (
        inspect.getsource(aiokafka.AIOKafkaConsumer.last_poll_timestamp)
        .rstrip()
        .endswith("return assignment.state_value(partition).timestamp")
    )


def test_the_default_partitioner_is_the_one_send_uses() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    async def run() -> list[int]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
        # A 4-partition topic's metadata, without a broker.
        metadata: Any = producer._metadata
        metadata.partitions_for_topic = metadata.available_partitions_for_topic = lambda t: {
            0,
            1,
            2,
            3,
        }
        try:
            return [
                faust_internals.default_partition(producer, "t", b"key-%d" % i, b"v")
                for i in range(20)
            ]
        finally:
            await producer.stop()

    partitions = asyncio.run(run())
    assert len(set(partitions)) > 1
    # aiokafka's default partitioner: murmur2 of the key, as the Java client.
    assert partitions == [
        DefaultPartitioner()(b"key-%d" % i, [0, 1, 2, 3], [0, 1, 2, 3]) for i in range(20)
    ]


def close_consumer_thread_loop(app: faust.App) -> None:
    # Built (by app.consumer) but never started: its thread's event loop is not closed for us.
    app.consumer._thread.thread_loop.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("standby_replicas", [0, 1])
def test_the_worker_consumer_gets_faust_co_partitioning_assignor(standby_replicas: int) -> None:
    """Whatever table_standby_replicas says (Faust's driver picks aiokafka's round robin when it
    is 0 and there is no table): partition p of events and labels go to one worker."""

    async def run() -> tuple[faust.App, dict[str, Any]]:
        async def nothing() -> None: ...

        app = fast_delivery_app(
            "t-internals-assignor",
            {},
            nothing,
            lambda tps: set(),
            broker="kafka://127.0.0.1:1",
            autodiscover=False,
            table_standby_replicas=standby_replicas,
        )
        try:
            return app, await worker_consumer_settings(app)
        finally:
            close_consumer_thread_loop(app)

    app, created = asyncio.run(run())
    assert created["assignors"] == [app.assignor]
    assert isinstance(app.assignor, PartitionAssignor)
    assert created["fetch_max_wait_ms"] == FETCH_MAX_WAIT_MS


def test_driftline_serve_app_uses_the_co_partitioning_assignor() -> None:
    from driftline.live.app import build_app
    from driftline.settings import load_settings

    async def run() -> tuple[faust.App, dict[str, Any]]:
        app, _ = build_app(
            load_settings(environ={"DRIFTLINE_KAFKA__BOOTSTRAP": "127.0.0.1:1"}), b"k" * 32
        )
        try:
            return app, await worker_consumer_settings(app)
        finally:
            close_consumer_thread_loop(app)

    app, created = asyncio.run(run())
    assert [type(a) for a in created["assignors"]] == [PartitionAssignor]
    assert {"driftline-events", "driftline-labels"} <= set(app.agents)


def test_records_fetched_before_a_pause_are_all_handed_over() -> None:
    """The worker pauses a partition (flow control) while a fetch of it is on its way in: the
    records already returned by that fetch (the consumer's position is past them) must still
    reach the agent, or they are lost for good. Faust's own loop skips a batch whose partition
    is no longer active (its set of active partitions is the live one that pausing changes)."""
    from faust.types import TP

    tp = TP("events", 0)
    handed: list[int] = []
    waits: list[float] = []

    async def hand_over(chunk: list[Any]) -> None:
        handed.extend(r.offset for r in chunk)

    async def stop_hook() -> None:
        return None

    async def run() -> None:
        app = fast_delivery_app(
            "it-pause",
            {"events": (2, hand_over)},
            stop_hook,
            lambda tps: set(),
            broker="kafka://127.0.0.1:1",
        )
        consumer = app.consumer
        consumer._active_partitions = {tp}
        consumer.highwater = lambda tp: 6  # type: ignore[method-assign]
        fetcher = types.SimpleNamespace(_stopped=asyncio.Event())
        records = [types.SimpleNamespace(offset=i, partition=0) for i in range(6)]
        calls = 0

        async def wait_next_records(timeout: float) -> tuple[dict[Any, Any], set[Any]]:
            nonlocal calls
            calls += 1
            waits.append(timeout)
            active = consumer._get_active_partitions()
            if calls == 1:
                # Fetched while active; paused before the loop gets to the batch (and the loop
                # stops after it: with nothing active it would wait for a resume).
                consumer.pause_partitions([tp])
                fetcher._stopped.set()
                return {tp: records}, active
            fetcher._stopped.set()
            return {}, active

        consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
        await consumer._drain_messages(fetcher)
        close_consumer_thread_loop(app)

    asyncio.run(run())
    assert handed == [0, 1, 2, 3, 4, 5]
    # A short wait for records: it only asks for the partitions active when it starts, so a
    # partition resumed meanwhile would wait out Faust's 1 s (the worker idle all along).
    assert waits and max(waits) <= 0.1


def test_partitions_being_restored_stay_paused_until_released() -> None:
    """Faust resumes every partition of an assignment (its table recovery) before it sends
    ``on_partitions_assigned``. The worker's partitions must not be fetched from until their
    engines are restored and the consumer is at their watermarks: records fetched from wherever
    aiokafka was went into the worker first, the ones between the watermark and them after the
    seek (out of order: late labels applied after later events, or skipped)."""
    from faust.types import TP

    events, labels, other = TP("events", 1), TP("labels", 1), TP("other", 0)
    calls: list[str] = []

    async def stop_hook() -> None:
        return None

    def before_assigned(tps: set[TP]) -> set[TP]:
        calls.append(f"before {sorted(tps)}")
        return {events, labels}

    async def run() -> tuple[set[TP], set[TP]]:
        app = fast_delivery_app(
            "it-assign", {}, stop_hook, before_assigned, broker="kafka://127.0.0.1:1"
        )
        consumer = app.consumer

        async def faust_takes_it(assigned: Any, generation_id: int = 0) -> None:
            calls.append(f"faust, flow {consumer.flow_active}")
            consumer.pause_partitions(assigned)
            consumer.resume_partitions(assigned)  # as Faust's recovery does

        consumer.stop_flow()  # as at the revocation
        consumer._on_partitions_assigned = faust_takes_it
        try:
            await consumer.on_partitions_assigned({events, labels, other}, 2)
            active_after_faust = set(consumer._get_active_partitions())
            release_held(app, {events, labels})
            return active_after_faust, set(consumer._get_active_partitions())
        finally:
            close_consumer_thread_loop(app)

    after_faust, after_release = asyncio.run(run())
    assert calls == [f"before {sorted([events, labels, other])}", "faust, flow False"]
    assert after_faust == {other}
    assert after_release == {events, labels, other}


def _drain_once(
    app: faust.App, batches: list[dict[Any, list[Any]]], on_call: Callable[[], None] = lambda: None
) -> list[set[Any]]:
    """Run the app consumer's drain loop over ``batches`` (one per fetch, then it stops); the
    active partitions at each fetch."""
    consumer: Any = app.consumer
    fetcher = types.SimpleNamespace(_stopped=asyncio.Event())
    active_at_fetch: list[set[Any]] = []

    async def wait_next_records(timeout: float) -> tuple[dict[Any, Any], set[Any]]:
        active_at_fetch.append(set(consumer._get_active_partitions()))
        on_call()
        if not batches:
            fetcher._stopped.set()
            return {}, consumer._get_active_partitions()
        return batches.pop(0), consumer._get_active_partitions()

    async def run() -> None:
        consumer._wait_next_records = wait_next_records
        await consumer._drain_messages(fetcher)
        close_consumer_thread_loop(app)

    asyncio.run(run())
    return active_at_fetch


def test_records_of_a_held_partition_are_not_handed_over() -> None:
    """A fetch that was on its way when the partitions were assigned can bring records of a
    partition the worker is restoring (read from wherever aiokafka's position was): they are
    left out, and read again from the watermark the consumer is moved to."""
    from faust.types import TP

    held, free = TP("events", 0), TP("events", 1)
    handed: list[tuple[int, int]] = []

    async def hand_over(chunk: list[Any]) -> None:
        handed.extend((r.partition, r.offset) for r in chunk)

    async def stop_hook() -> None:
        return None

    app = fast_delivery_app(
        "it-held", {"events": (10, hand_over)}, stop_hook, lambda tps: set(), broker="kafka://x:1"
    )
    consumer: Any = app.consumer
    consumer._active_partitions = {free}
    consumer.held = frozenset({held})
    consumer.highwater = lambda tp: 3
    records = {
        tp: [types.SimpleNamespace(offset=i, partition=tp.partition) for i in range(3)]
        for tp in (held, free)
    }
    _drain_once(app, [records])
    assert handed == [(1, 0), (1, 1), (1, 2)]


def test_with_every_partition_paused_the_drain_loop_looks_again_soon() -> None:
    """Faust's wait for records sleeps 1 s when no partition is active (all held while the worker
    restores them, or paused by flow control): one resumed meanwhile would wait that long. The
    loop looks again after a short sleep instead, and fetches once one is active."""
    from faust.types import TP

    tp = TP("events", 0)

    async def stop_hook() -> None:
        return None

    async def hand_over(chunk: list[Any]) -> None:
        return None

    app = fast_delivery_app(
        "it-idle", {"events": (10, hand_over)}, stop_hook, lambda tps: set(), broker="kafka://x:1"
    )
    consumer: Any = app.consumer
    consumer._active_partitions = set()
    loop_ran: list[bool] = []

    async def resume_later() -> None:
        await asyncio.sleep(0.05)
        consumer.resume_partitions({tp})

    real_drain = consumer._drain_messages

    async def drain_with_resume(fetcher: Any) -> None:
        task = asyncio.ensure_future(resume_later())
        await real_drain(fetcher)
        loop_ran.append(task.done())

    consumer._drain_messages = drain_with_resume
    active_at_fetch = _drain_once(app, [])
    assert active_at_fetch == [{tp}]  # never asked for records with nothing active
    assert loop_ran == [True]
