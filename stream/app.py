"""``driftline serve``: the Faust app that runs the engine on live Kafka topics.

* The app id (``service.app_id``) is the consumer group: workers started with the same id share the
  partitions of ``events`` and ``labels`` (co-partitioned: partition ``p`` of both goes to one
  worker). Give each worker on one machine its own ``service.web_port`` / ``service.metrics_port``
  (``DRIFTLINE_SERVICE__WEB_PORT=6067``...).
* Records are consumed as raw bytes, so the engine validates them itself and a dead letter keeps
  the original bytes. Outputs are JSON (orjson): ``predictions`` keyed by the event's key (or id),
  ``drift-alerts`` and ``dead-letter`` keyed by partition, ``model-snapshots`` keyed by
  ``"<app id>:<partition>"`` with the signed snapshot as the value.
* Offsets are not committed to the consumer group: where a partition resumes is the watermark of
  its newest valid snapshot (see :mod:`stream.worker`).
* ``GET /health`` on the web port: JSON with the owned partitions. ``/metrics`` on the metrics port.
* Kafka security settings (``[kafka.client]``: ``security_protocol``, ``sasl_mechanism``,
  ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``, ``ssl_certfile``,
  ``ssl_keyfile``) reach Faust's clients as credentials and the admin/snapshot clients as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from stream.settings import Settings

if TYPE_CHECKING:
    import faust

    from stream.worker import Worker

log = logging.getLogger("driftline.app")

#: Records reach the worker in takes: full ones (a micro-batch, or TAKE_MAX records processed one
#: by one) or whatever arrived within this long.
BATCH_WITHIN_S = 0.005
TAKE_MAX = 500
#: Outputs wait this long to be sent in one request with others (Faust's default: no wait).
PRODUCER_LINGER_S = 0.005
TICK_S = 0.1
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
    """The Faust app with its agents, rebalance hooks, timer and ``/health`` page."""
    import faust
    from faust.types import TP

    from stream.metrics import WorkerMetrics
    from stream.topics import SNAPSHOT_MAX_BYTES, normalized_client
    from stream.worker import Publisher, Record, Worker, read_snapshots

    kafka = settings.kafka
    names = kafka.topics
    app = faust.App(
        settings.service.app_id,
        broker=[f"kafka://{host.strip()}" for host in kafka.bootstrap.split(",")],
        broker_credentials=faust_credentials(normalized_client(kafka.client)),
        key_serializer="raw",
        value_serializer="raw",
        # stream.topics creates the topics; Faust's leader topic is only needed for tables.
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
        producer_max_request_size=SNAPSHOT_MAX_BYTES,
        web_port=settings.service.web_port,
        datadir=settings.service.data_dir,
        autodiscover=False,
    )
    # acks=False: Faust tracks no offsets of ours and commits none; the snapshots hold them.
    events_topic = app.topic(
        names.events, key_type=bytes, value_type=bytes, acks=False, partitions=kafka.partitions
    )
    labels_topic = app.topic(
        names.labels, key_type=bytes, value_type=bytes, acks=False, partitions=kafka.partitions
    )

    async def send(topic: str, key: bytes | None, value: bytes, headers: Any) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    def highwater(topic: str, partition: int) -> int | None:
        try:
            return int(app.consumer.highwater(TP(topic, partition)))
        except Exception:  # not assigned (any more), or nothing fetched yet
            return None

    metrics = WorkerMetrics(lambda: worker.engines)
    worker = Worker(
        settings, snapshot_key, Publisher(send, metrics, _too_large), metrics, highwater
    )
    batch_size = settings.engine.batch_size

    def record(event: Any) -> Record:
        message = event.message
        stamp = message.timestamp
        return Record(
            message.partition,
            message.offset,
            round(stamp * 1000) if stamp else None,
            message.value if message.value is not None else b"",
        )

    @app.agent(events_topic, name="driftline-events")
    async def process_events(stream: Any) -> None:
        # Micro-batch mode: one engine batch per take. Per-record mode takes up to TAKE_MAX
        # records too (fewer hand-overs), and the engine still sees them one at a time.
        take = batch_size if batch_size > 1 else TAKE_MAX
        async for events in stream.take_events(take, within=BATCH_WITHIN_S):
            await worker.handle_events([record(e) for e in events])

    @app.agent(labels_topic, name="driftline-labels")
    async def process_labels(stream: Any) -> None:
        async for events in stream.take_events(1000, within=BATCH_WITHIN_S):
            await worker.handle_labels([record(e) for e in events])

    @app.timer(TICK_S, name="driftline-tick")
    async def tick() -> None:
        await worker.tick()

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs["revoked"]
        await worker.on_revoked({tp.partition for tp in revoked if tp.topic == names.events})

    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs["assigned"]
        mine = {tp.partition for tp in assigned if tp.topic == names.events}
        # Faust resumes fetching while this runs (its recovery task does not wait for signal
        # handlers): until the engines are ready, records of these partitions wait in the agents.
        worker.begin_assignment(mine)
        try:
            snapshots = await asyncio.to_thread(read_snapshots, settings, mine)
            resume = await worker.on_assigned(mine, snapshots)
            # In the consumer's own thread (seek_wait): the fetcher may be running already.
            # Faust also "seeks to committed offsets": none are ever committed, so these stay.
            await app.consumer.seek_wait(
                {
                    tp: resume[tp.partition][0 if tp.topic == names.events else 1]
                    for tp in assigned
                    if tp.partition in resume and tp.topic in (names.events, names.labels)
                }
            )
        finally:
            worker.end_assignment()
        log.info(
            "assigned %s[%s]; resuming at %s",
            names.events,
            ",".join(map(str, sorted(mine))) or "-",
            {p: at for p, at in sorted(resume.items())} or "-",
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

    from stream.topics import TopicError, ensure_topics

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
    runner = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    # A terminal spinner (Faust's default below info) turns every debug record on: not a service's.
    runner.spinner = None
    try:
        runner.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from learners.snapshot import KEY_ENV, KEY_FILE_ENV, SnapshotError, load_key
    from stream.cli import UsageError
    from stream.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    try:
        key = load_key(settings.snapshot.key_file)
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None
    if key is None:
        raise UsageError(
            f"no snapshot key: set ${KEY_ENV} (or ${KEY_FILE_ENV}, or snapshot.key_file) to a "
            "secret of at least 16 bytes; the worker signs its snapshots with it and refuses to "
            "load any that do not verify"
        )
    return serve(settings, key, loglevel=args.loglevel)


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline serve`` to the CLI's sub-command parser."""
    p = sub.add_parser(
        "serve",
        help="run the live worker: Kafka events in, predictions, alerts, snapshots out",
        description="Run a live worker in the foreground: consume the events and labels "
        "topics, predict and learn with the engine, publish predictions, drift alerts, dead "
        "letters and signed snapshots. Workers with the same service.app_id share the "
        "partitions. Ctrl-C stops after a final snapshot.",
        epilog="examples:\n  DRIFTLINE_SNAPSHOT_KEY=... driftline serve --config driftline.toml\n"
        "  DRIFTLINE_SERVICE__WEB_PORT=6067 DRIFTLINE_SERVICE__METRICS_PORT=9465 driftline serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML settings")
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (info)",
    )
    commands["serve"] = cmd_serve
