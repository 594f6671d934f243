"""``driftline serve``: the Faust app that runs the engine on live Kafka topics.

* The app id (``service.app_id``) is the consumer group: workers started with the same id share the
  partitions of ``events`` and ``labels`` (co-partitioned: partition ``p`` of both goes to one
  worker). Give each worker on one machine its own ``service.web_port`` / ``service.metrics_port``
  (``DRIFTLINE_SERVICE__WEB_PORT=6067``...).
* Records are consumed as raw bytes, so the engine validates them itself and a dead letter keeps
  the original bytes. Two ``@app.agent`` functions consume them (:func:`declare_agents`): one
  for ``events``, one for ``labels``, each handing the worker a chunk of one partition's records
  at a time. Faust's per-message delivery cost more than the engine, so the consumer hands the
  records of a fetch to the agents' bounded channels in chunks (:class:`ChunkFeed`,
  :func:`driftline.live.faust_internals.fast_delivery_app`); a stopping worker lets its agents finish
  every chunk handed to them before its final snapshots.
* Outputs are JSON (orjson): ``predictions`` keyed by the event's key (or id), ``drift-alerts``
  and ``dead-letter`` keyed by partition, ``model-snapshots`` keyed by ``"<app id>:<partition>"``
  with the signed snapshot as the value.
* Offsets are not committed to the consumer group: where a partition resumes is the watermark of
  its newest valid snapshot (see :mod:`driftline.live.worker`).
* ``GET /health`` on the web port: JSON with the owned partitions. ``/metrics`` on the metrics port.
* Kafka security settings (``[kafka.client]``: ``security_protocol``, ``sasl_mechanism``,
  ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``, ``ssl_certfile``,
  ``ssl_keyfile``) reach Faust's clients as credentials and the admin/snapshot clients as they are.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import faust

    # Only for annotations: driftline.settings imports River, and `driftline --help` builds this
    # command's parser without it.
    from driftline.live.worker import Worker
    from driftline.settings import Settings

from driftline.live.agents import DRAIN_TIMEOUT_S, ChunkFeed, declare_agents, drain

log = logging.getLogger("driftline.app")

#: Records reach the worker in chunks of at most this many (per-record mode; a micro-batch is a
#: chunk of ``engine.batch_size``): a large fetch is processed and published in slices.
CHUNK_MAX = 500
LABELS_CHUNK_MAX = 1000
#: Outputs wait this long to be sent in one request with others (Faust's default: no wait).
PRODUCER_LINGER_S = 0.005
#: Largest batch of outputs per partition (Faust's default: 16 KB): the predictions of a whole
#: chunk go out in one request. Below the brokers' default max.message.bytes (1 MB).
PRODUCER_BATCH_BYTES = 256 * 1024
#: Records waiting at the head of the stream (labels.max_idle_ms) are looked at this often.
TICK_S = 0.05
SESSION_TIMEOUT_S = 10.0


def faust_credentials(client: dict[str, Any]) -> Any:
    """Faust credentials from the kafka-python style ``kafka.client`` settings (None: plaintext)."""
    import faust

    protocol = str(client.get("security_protocol", "PLAINTEXT")).upper()
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            purpose=ssl.Purpose.SERVER_AUTH, cafile=client.get("ssl_cafile")
        )
        if client.get("ssl_certfile"):
            context.load_cert_chain(
                client["ssl_certfile"], client.get("ssl_keyfile"), client.get("ssl_password")
            )
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=client.get("sasl_plain_username"),
            password=client.get("sasl_plain_password"),
            mechanism=client.get("sasl_mechanism", "PLAIN"),
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def _too_large(exc: BaseException) -> bool:
    from aiokafka.errors import MessageSizeTooLargeError

    while exc is not None:
        if isinstance(exc, MessageSizeTooLargeError):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def build_app(settings: Settings, snapshot_key: bytes) -> tuple[faust.App, Worker]:
    """The Faust app with its record handlers, rebalance hooks, timer and ``/health`` page."""
    from faust.types import TP

    from driftline.live.faust_internals import (
        HandOver,
        aiokafka_producer,
        default_partition,
        fast_delivery_app,
        last_fetch_ms,
        release_held,
    )
    from driftline.live.metrics import WorkerMetrics
    from driftline.live.publisher import Publisher
    from driftline.live.recovery import read_snapshots
    from driftline.live.topics import SNAPSHOT_MAX_BYTES, normalized_client
    from driftline.live.worker import Worker

    kafka = settings.kafka
    names = kafka.topics
    # Filled in below, once the app exists: {topic: (chunk size, hand-over)} and their feeds.
    handovers: dict[str, tuple[int, HandOver]] = {}
    feeds: list[ChunkFeed] = []

    async def before_stop() -> None:
        # Before Faust stops the consumer (which empties the agents' queues): the agents finish
        # every chunk handed to them, so the final snapshots (on_before_shutdown) cover them.
        if not await drain(feeds):
            log.warning("stopping with chunks not processed after %.0f s", DRAIN_TIMEOUT_S)
        await worker.process_ready()  # what their label orders let go (the rest waits there)

    def events_partitions(tps: Any) -> set[int]:
        return {tp.partition for tp in tps if tp.topic == names.events}

    def before_assigned(assigned: Any) -> set[Any]:
        # Before Faust resumes fetching: the partitions of the new assignment stay paused until
        # their engines are restored and the consumer is at their watermarks (restore below).
        worker.begin_assignment()
        return {tp for tp in assigned if tp.topic in (names.events, names.labels)}

    app = fast_delivery_app(
        settings.service.app_id,
        handovers,
        before_stop,
        before_assigned,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap.split(",")],
        broker_credentials=faust_credentials(normalized_client(kafka.client)),
        key_serializer="raw",
        value_serializer="raw",
        # driftline.live.topics creates the topics; Faust's leader topic is only needed for tables.
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication,
        consumer_auto_offset_reset="earliest",
        # A worker killed with -9 holds its partitions until its session times out (Faust's
        # default is 60 s): a replacement takes over within this many seconds instead.
        broker_session_timeout=SESSION_TIMEOUT_S,
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_S,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        producer_max_request_size=SNAPSHOT_MAX_BYTES,
        web_port=settings.service.web_port,
        datadir=settings.service.data_dir,
        autodiscover=False,
    )
    # acks=False: Faust tracks no offsets of ours and commits none; the snapshots hold them.
    # Subscribed here: the agents read channels that the fast delivery fills from these topics.
    for name in (names.events, names.labels):
        app.topics.add(
            app.topic(
                name, key_type=bytes, value_type=bytes, acks=False, partitions=kafka.partitions
            )
        )

    async def send(topic: str, key: bytes | None, value: bytes, headers: Any) -> Any:
        # One record (a snapshot's chunk, an alert, a record sent again) goes out in a closed
        # batch of its own, at once: producer.send() would hold it producer_linger for company,
        # and a snapshot's publish (under the worker's lock) waits for its chunks. A record too
        # large for a batch goes through send(), whose size check names it.
        if len(value) + len(key or b"") >= PRODUCER_BATCH_BYTES // 2:
            return await app.producer.send(topic, key, value, None, None, headers)
        producer = aiokafka_producer(app)
        await producer.partitions_for(topic)
        batch = producer.create_batch()
        batch.append(timestamp=None, key=key, value=value, headers=headers or [])
        batch.close()
        partition = default_partition(producer, topic, key, value)
        return await producer.send_batch(batch, topic, partition=partition)

    async def send_batches(
        topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[tuple[Any, list[tuple[bytes | None, bytes]]]]:
        # aiokafka's batch API under Faust's producer: each record lands on the partition that
        # send() would choose (the same partitioner), in batches of the producer's batch size.
        producer = aiokafka_producer(app)
        partitions = await producer.partitions_for(topic)
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        if len(partitions) == 1:
            by_partition[next(iter(partitions))] = records
        else:
            for key, value in records:
                p = default_partition(producer, topic, key, value)
                by_partition.setdefault(p, []).append((key, value))
        handed = []
        members: list[tuple[bytes | None, bytes]]
        for p, recs in by_partition.items():
            batch, members = producer.create_batch(), []
            for key, value in recs:
                # append() refuses a record only when the batch is full (never the first one)
                if batch.append(timestamp=None, key=key, value=value) is None:
                    handed.append((await producer.send_batch(batch, topic, partition=p), members))
                    batch, members = producer.create_batch(), []
                    batch.append(timestamp=None, key=key, value=value)
                members.append((key, value))
            # Closed: nothing more is coming, so it goes out without lingering. (send_batch waits
            # until the partition's previous batch has left: a lingering one would stall us.)
            batch.close()
            handed.append((await producer.send_batch(batch, topic, partition=p), members))
        return handed

    def highwater(topic: str, partition: int) -> int | None:
        try:
            return int(app.consumer.highwater(TP(topic, partition)))
        except Exception:  # not assigned (any more), or nothing fetched yet
            return None

    def fetched_at(topic: str, partition: int) -> float | None:
        return last_fetch_ms(app, TP(topic, partition))

    def flow(topic: str, partition: int, on: bool) -> None:
        # Faust's own pause: records of a paused partition stay in the fetcher's buffer.
        tps = [TP(topic, partition)]
        (app.consumer.resume_partitions if on else app.consumer.pause_partitions)(tps)

    metrics = WorkerMetrics(lambda: worker.engines)
    worker = Worker(
        settings,
        snapshot_key,
        Publisher(send, metrics, _too_large, send_batches),
        metrics,
        highwater,
        flow,
        fetched_at,
    )

    # Micro-batch mode: one engine batch per chunk. Per-record mode hands over up to CHUNK_MAX
    # records at a time too (fewer hand-overs), and the engine still sees them one at a time.
    batch_size = settings.engine.batch_size
    events = ChunkFeed(app, batch_size if batch_size > 1 else CHUNK_MAX)
    labels = ChunkFeed(app, LABELS_CHUNK_MAX)
    feeds.extend((events, labels))
    for name, feed in ((names.events, events), (names.labels, labels)):
        handovers[name] = (feed.chunk_size, feed.hand_over)
    declare_agents(app, worker, events, labels)

    @app.task
    async def process() -> None:
        # The agents hand records over; this task processes what the label orders let go.
        await worker.process_forever()

    @app.timer(TICK_S, name="driftline-tick")
    async def tick() -> None:
        await worker.tick()

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs["revoked"]
        await worker.on_revoked(events_partitions(revoked))

    restoring: set[asyncio.Task[None]] = set()

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs["assigned"]
        mine = events_partitions(assigned)
        # Returns at once: aiokafka sends no heartbeat while this callback runs, and reading
        # large snapshots can take longer than the session timeout (the group would rebalance
        # over and over). Their partitions stay paused meanwhile (before_assigned), until the
        # engines are in place and the consumer is at their watermarks.
        task = asyncio.ensure_future(restore(assigned, mine, worker.assignment))
        restoring.add(task)
        task.add_done_callback(restoring.discard)

    async def restore(assigned: Any, mine: set[int], assignment: int) -> None:
        started = time.perf_counter()
        try:
            snapshots = await asyncio.to_thread(read_snapshots, settings, mine, snapshot_key)
            resume = await worker.on_assigned(mine, snapshots, assignment)
            if resume is None:
                return  # a newer assignment came meanwhile
            # In the consumer's own thread (seek_wait): the fetcher may be running already.
            # Faust also "seeks to committed offsets": none are ever committed, so these stay.
            await app.consumer.seek_wait(
                {
                    tp: resume[tp.partition][0 if tp.topic == names.events else 1]
                    for tp in assigned
                    if tp.partition in resume and tp.topic in (names.events, names.labels)
                }
            )
            if not worker.is_current(assignment):
                return  # a newer assignment came meanwhile: its partitions are its to release
            # Fetched from here on: each partition's records from its watermark, in order (a
            # held partition stays paused: it has snapshots, none of which may be restored).
            release_held(app, {tp for tp in assigned if worker.fetching(tp.topic, tp.partition)})
        except Exception as exc:
            if app.should_stop or not worker.is_current(assignment):
                # Stopped, or reassigned, while taking over (the seek can fail on a partition
                # no longer assigned): nothing of these partitions was processed yet.
                log.info("taking over %s[%s] ended early", names.events, sorted(mine))
                return
            log.exception("taking over %s[%s] failed", names.events, sorted(mine))
            await app.crash(exc)  # nothing was committed: a restart takes over afresh
            return
        log.info(
            "assigned %s[%s]; resuming at %s (restored in %.1f s)",
            names.events,
            ",".join(map(str, sorted(mine))) or "-",
            {p: at for p, at in sorted(resume.items())} or "-",
            time.perf_counter() - started,
        )

    async def on_shutdown(sender: Any, *args: Any, **kwargs: Any) -> None:
        await worker.shutdown()

    # (mode's handler type wants a keyword named `signal` that these take in **kwargs)
    app.on_partitions_revoked.connect(cast(Any, on_revoked))
    app.on_partitions_assigned.connect(cast(Any, on_assigned))
    app.on_before_shutdown.connect(cast(Any, on_shutdown))

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json(worker.status())

    return app, worker


def serve(settings: Settings, snapshot_key: bytes, *, loglevel: str = "info") -> int:
    """Create missing topics, start the metrics server, run the worker until stopped."""
    import faust

    from driftline.live.faust_internals import UntestedVersionError, check_versions
    from driftline.live.log_filters import install_client_noise_filter, install_startup_noise_filter
    from driftline.live.topics import TopicError, ensure_topics

    try:
        check_versions()
    except UntestedVersionError as exc:
        print(f"driftline serve: {exc}", file=sys.stderr)
        return 1
    try:
        ensure_topics(settings)
    except TopicError as exc:
        print(f"driftline serve: {exc}", file=sys.stderr)
        return 1
    app, worker = build_app(settings, snapshot_key)
    try:
        worker.metrics.serve(settings.service.metrics_port)
    except OSError as exc:
        print(
            f"driftline serve: cannot serve metrics on port {settings.service.metrics_port}: "
            f"{exc} (set service.metrics_port / DRIFTLINE_SERVICE__METRICS_PORT)",
            file=sys.stderr,
        )
        return 1
    install_startup_noise_filter(app.logger)  # a healthy start logs no ERROR
    # A broker outage: one line when it is lost, one every 10 s or more while it lasts, one when
    # it is back (the clients would log every retry, ~100 a second).
    client_noise = install_client_noise_filter()

    @app.timer(1.0, name="driftline-kafka-log")
    async def report_client_noise() -> None:
        client_noise.poll()

    runner = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    # A terminal spinner (Faust's default below info) turns every debug record on: not a service's.
    runner.spinner = None
    # Everything imported and built so far (Faust, River, pandas, scipy...) lives as long as the
    # process: frozen, the collector's full passes skip it. A full pass that walks it all stalls
    # processing for ~100 ms here; after the freeze, ~2 ms.
    gc.collect()
    gc.freeze()
    try:
        runner.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
