"""Every private name of faust-streaming and aiokafka that driftline uses, in one place.

Nothing else in ``stream/`` touches a Faust or aiokafka name that starts with ``_``. Each one here
was read from the versions in :data:`TESTED_VERSIONS` (the pins of pyproject.toml), and
``tests/test_faust_internals.py`` pins the behaviour relied on; ``driftline serve`` refuses to
start on other versions (:func:`check_versions`) rather than fail in the middle of a stream.

What is private, and why:

* **Fast delivery** (:func:`fast_delivery_app`). Faust delivers every message on its own (a task
  and a queue hand-over per message, then a stream), about 130 µs per message here: more than the
  engine spends on it. The app's consumer replaces Faust's drain loop
  (``Consumer._drain_messages``, with ``_wait_next_records`` and ``_read_offset``) by one that
  hands the records of a fetch over a chunk at a time, with the checks Faust makes per message
  (flow active, same generation, offset not already read) but one: a partition paused after its
  records were fetched still gets them (Faust drops them, and nothing fetches them again). The app is wired through ``App._new_transport``, ``Consumer._new_consumer_thread``.
* **Held partitions** (``Consumer.on_partitions_assigned``, ``Consumer.resume_partitions``):
  Faust's table recovery resumes every partition of an assignment before Faust sends
  ``on_partitions_assigned``; the app's consumer keeps the ones the worker is restoring paused
  until it has moved the consumer to their watermarks (:func:`release_held`).
* **Fetch wait** (``AIOKafkaConsumerThread._create_worker_consumer``, aiokafka's
  ``_fetch_max_wait_ms``): Faust hard-codes 1500 ms.
* **Prefetch backoff** (``AIOKafkaConsumerThread.on_start``, then aiokafka's
  ``_ensure_consumer()._fetcher._prefetch_backoff``): aiokafka's consumer takes no such option,
  and its 100 ms left events waiting for a labels fetch (:data:`PREFETCH_BACKOFF_S`).
* **Co-partitioning assignor**: the same override gives aiokafka's consumer Faust's
  ``PartitionAssignor`` explicitly (``_partition_assignment_strategy``); Faust's driver picks it
  only when ``table_standby_replicas > 0`` or a changelog table exists, and otherwise aiokafka's
  round robin, which would split partition ``p`` of ``events`` and ``labels`` between workers.
* **Producer** (:func:`aiokafka_producer`, :func:`default_partition`): the aiokafka producer under
  Faust's (``_ensure_producer()``), for its batch API, and its partitioner (``_partition``).
* **Last fetch time** (:func:`last_fetch_ms`): the aiokafka consumer under Faust's consumer thread
  (``_thread._ensure_consumer()``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust
    from faust.types import TP

#: The versions every private name below was read from (pyproject.toml pins the same).
TESTED_VERSIONS = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

#: Longest a fetch waits on the broker for records to arrive. Faust's 1.5 s delays the events of a
#: busy partition whenever the labels partition is idle: aiokafka keeps one fetch in flight per
#: broker, and a fetch of only idle partitions waits this long on the broker (p50 latency 1.2 s).
FETCH_MAX_WAIT_MS = 10

#: Longest the drain loop waits for records before it asks again. The wait is for the partitions
#: active when it started: a partition resumed meanwhile (flow control) is not fetched for until
#: the next wait, so Faust's 1 s left a worker idle for up to a second after every resume.
FETCH_WAIT_S = 0.02

#: How long aiokafka fetches nothing from a broker while records it fetched from it wait to be
#: taken (its 100 ms). Events wait in the worker until the labels partition is read to its end
#: as of a fetch ``labels.max_idle_ms`` after them; on one broker, while a backlog of events sat
#: in aiokafka's buffer, that fetch came only every ~100 ms.
PREFETCH_BACKOFF_S = 0.01

#: ``hand_over(records)``: aiokafka ``ConsumerRecord`` objects of one partition, in offset order.
HandOver = Callable[[list[Any]], Awaitable[None]]


class UntestedVersionError(RuntimeError):
    """faust-streaming or aiokafka is not the version this module was written against."""


def installed_versions() -> dict[str, str | None]:
    """The installed version of each package of :data:`TESTED_VERSIONS` (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in TESTED_VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_versions(installed: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`UntestedVersionError` unless the tested versions are the installed ones.

    >>> check_versions({"faust-streaming": "0.15.3", "aiokafka": "0.14.0"})
    >>> check_versions({"faust-streaming": "0.16.0", "aiokafka": "0.14.0"})
    Traceback (most recent call last):
    ...
    driftline.live.faust_internals.UntestedVersionError: the live worker is tested with faust-streaming 0.15.3 and aiokafka 0.14.0, but faust-streaming 0.16.0 is installed: ...
    """
    found = installed_versions() if installed is None else installed
    wrong = [
        f"{name} {found.get(name) or '(none)'}"
        for name, tested in TESTED_VERSIONS.items()
        if found.get(name) != tested
    ]
    if wrong:
        tested = " and ".join(f"{name} {v}" for name, v in TESTED_VERSIONS.items())
        raise UntestedVersionError(
            f"the live worker is tested with {tested}, but {', '.join(wrong)} "
            f"{'is' if len(wrong) == 1 else 'are'} installed: it relies on private parts of "
            "both (stream/live/faust_internals.py). Install the tested versions "
            "(pip install -e . reinstalls the pins of pyproject.toml)."
        )


def fast_delivery_app(
    app_id: str,
    feeds: Mapping[str, tuple[int, HandOver]],
    before_stop: Callable[[], Awaitable[None]],
    before_assigned: Callable[[set[TP]], set[TP]],
    **options: Any,
) -> faust.App:
    """A ``faust.App`` whose consumer hands the records of ``feeds``' topics over a fetch at a
    time, in chunks: ``{topic: (chunk size, hand_over)}`` (read when records arrive).

    Everything else of Faust stays (the group, the assignor, rebalances and their hooks, pausing,
    seeking, flow control, agents, timers). Per chunk, in offset order per partition: nothing is
    handed over once the app is stopping, the flow is stopped (a rebalance) or the generation
    moved on (Faust drops the rest of the fetch too); the records already read are left out; the
    read offset moves on only when no rebalance came during the hand-over (a revoked partition's
    read offset is forgotten and its records are fetched again from where the new owner seeks).
    ``before_stop()`` runs when the app starts stopping, before Faust stops its consumer (which
    empties the agents' queues): time to finish what was handed over.

    ``before_assigned(tps)`` runs first thing on an assignment, while the flow is still stopped,
    and returns the partitions to hold back: Faust's resume of the new assignment (its table
    recovery, before it sends ``on_partitions_assigned``) leaves them paused until
    :func:`release_held`. (Resumed by Faust, they were fetched from wherever aiokafka's position
    was, and handed over before the engines were restored and the consumer moved to their
    watermarks: records past the watermark came first, the ones before them after the seek.)
    """
    import faust
    from faust.transport.drivers import aiokafka as driver

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
            # Faust's co-partitioning assignor, whatever table_standby_replicas says.
            self._assignor = self.app.assignor
            consumer._partition_assignment_strategy = [self.app.assignor]
            return consumer

        async def on_start(self) -> None:
            await super().on_start()  # creates and starts aiokafka's consumer, and its fetcher
            self._ensure_consumer()._fetcher._prefetch_backoff = PREFETCH_BACKOFF_S

    class FastDeliveryConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

        #: Paused until released (:func:`release_held`), whatever resumes them meanwhile.
        held: frozenset[TP] = frozenset()

        async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
            # (Faust takes no assignment once stopping: nothing to restore, nothing held.)
            stopping = self.app.should_stop
            self.held = frozenset() if stopping else frozenset(before_assigned(assigned))
            await super().on_partitions_assigned(assigned, generation_id)

        def resume_partitions(self, tps: Any) -> None:
            super().resume_partitions(set(tps) - self.held)

        async def _drain_messages(self, fetcher: Any) -> None:
            app = self.app
            read_offset = self._read_offset
            consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
            try:
                while not (consumer_stopped() or fetcher_stopped()):
                    self.diag.set_flag("FETCHING")
                    if self.flow_active and not self._get_active_partitions():
                        # Every partition paused (held, or flow control): Faust would sleep 1 s
                        # before it looks again, whatever is resumed meanwhile.
                        await asyncio.sleep(FETCH_WAIT_S)
                        continue
                    # Faust's active partitions (the second item) are not looked at: see below.
                    records, _ = await self._wait_next_records(timeout=FETCH_WAIT_S)
                    await asyncio.sleep(0)  # (as Faust's loop: let others run between fetches)
                    if not records or self.should_stop or app.should_stop:
                        continue
                    if not self.flow_active:
                        # As Faust does with a fetch that arrives while the flow is stopped.
                        try:
                            await self.perform_seek()
                        except Exception as exc:
                            self.log.warning(f"exception performing seek: {exc!r}")
                        continue
                    generation = app.consumer_generation_id
                    # Every record fetched is handed over, also of a partition paused since
                    # the fetch (flow control): the position is past them, so a record skipped
                    # here would never come again. (Faust's loop skips a batch whose partition
                    # left its live set of active partitions meanwhile: records lost.)
                    for tp, batch in records.items():
                        if tp in self.held:
                            # Fetched before the seek to its watermark (a fetch that was on its
                            # way when the partitions were assigned): read again from there.
                            continue
                        chunk_size, hand_over = feeds[tp.topic]
                        app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                        for start in range(0, len(batch), chunk_size):
                            if (
                                app.should_stop
                                or not self.flow_active
                                or app.consumer_generation_id != generation
                            ):
                                break
                            chunk = batch[start : start + chunk_size]
                            seen = read_offset[tp]
                            if seen is not None and chunk[0].offset < seen:
                                chunk = [r for r in chunk if r.offset >= seen]
                                if not chunk:
                                    continue
                            await hand_over(chunk)
                            if not self.flow_active or app.consumer_generation_id != generation:
                                break  # dropped by the agent's stream: fetched again
                            read_offset[tp] = chunk[-1].offset
                    self.diag.unset_flag("FETCHING")
            except self.consumer_stopped_errors:
                if app.should_stop:
                    self.log.info("Broker stopped consumer, shutting down...")
                    return
                raise
            except asyncio.CancelledError:
                if app.should_stop:
                    self.log.info("Consumer shutting down for user cancel.")
                    return
                raise
            except Exception as exc:
                self.log.exception("Drain messages raised: %r", exc)
                raise
            finally:
                self.diag.unset_flag("FETCHING")

    class FastDeliveryTransport(driver.Transport):
        Consumer = FastDeliveryConsumer

    class FastDeliveryApp(faust.App):
        def _new_transport(self) -> Any:
            return FastDeliveryTransport(self.conf.broker_consumer, self)

        async def on_stop(self) -> None:
            await before_stop()
            await super().on_stop()

    return FastDeliveryApp(app_id, **options)


def release_held(app: faust.App, tps: set[TP]) -> None:
    """Resume ``tps``, held back since the assignment (``before_assigned``): their engines are
    in place and the consumer was moved to where they resume."""
    consumer: Any = app.consumer
    consumer.held = consumer.held - tps
    consumer.resume_partitions(tps)


async def worker_consumer_settings(app: faust.App) -> dict[str, Any]:
    """What the app's aiokafka consumer is created with: ``assignors`` (the partition assignment
    strategy) and ``fetch_max_wait_ms``. Builds one and closes it (never started or connected)."""
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        return {
            "assignors": list(consumer._partition_assignment_strategy),
            "fetch_max_wait_ms": consumer._fetch_max_wait_ms,
        }
    finally:
        await consumer.stop()


def aiokafka_producer(app: faust.App) -> Any:
    """The started ``aiokafka.AIOKafkaProducer`` under the app's Faust producer."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def default_partition(producer: Any, topic: str, key: bytes | None, value: bytes) -> int:
    """The partition ``producer.send(topic, value, key=key)`` would choose (its partitioner)."""
    return int(producer._partition(topic, None, None, None, key, value))


def last_fetch_ms(app: faust.App, tp: TP) -> float | None:
    """When aiokafka last updated ``tp``'s highwater from a fetch (ms, wall clock; None: not
    assigned (any more), or nothing fetched yet)."""
    try:
        consumer = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        at = consumer.last_poll_timestamp(tp)
    except Exception:
        return None
    return None if at is None else float(at)
