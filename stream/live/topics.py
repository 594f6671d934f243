"""The topics the live worker needs, created when missing (kafka-python admin client).

Every topic gets ``kafka.partitions`` partitions and ``kafka.replication`` replicas. ``events`` and
``labels`` must have the same number of partitions: a label is sent with its event's key, lands on
the same partition number, and Faust's assignor gives partition ``p`` of both topics to the same
worker, which owns the engine of partition ``p``. ``model-snapshots`` is compacted (the newest
snapshot per key survives) and accepts records up to :data:`SNAPSHOT_MAX_BYTES`.

Topics that exist already are left as they are (created in advance by an operator, or by another
worker of the group a moment earlier); a partition count that breaks co-partitioning is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from driftline.live.kafka_clients import (
    TopicError as TopicError,  # raised here, defined with the clients
)
from driftline.live.kafka_clients import client_options, make_admin, wait_for_broker

if TYPE_CHECKING:
    # Only for annotations: driftline.settings imports River, and `driftline --help` builds the
    # topics command's parser without it.
    from driftline.settings import Settings

log = logging.getLogger("driftline.topics")

#: Largest snapshot record: the broker default (1 MB) is too small for a tree ensemble.
SNAPSHOT_MAX_BYTES = 10 * 1024 * 1024
SNAPSHOT_SEGMENT_MS = 60 * 60 * 1000
TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def normalized_client(client: dict[str, Any]) -> dict[str, Any]:
    """``kafka.client`` with dotted names as underscores (``sasl.mechanism`` -> ``sasl_mechanism``),
    unfiltered: for Faust's credentials (kafka-python clients use
    :func:`driftline.live.kafka_clients.client_options`)."""
    return {name.replace(".", "_"): value for name, value in client.items()}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The six driftline topics of ``settings``."""
    kafka = settings.kafka
    names = kafka.topics
    plain = [names.events, names.labels, names.predictions, names.alerts, names.dead_letter]
    specs = [TopicSpec(name, kafka.partitions, kafka.replication) for name in plain]
    specs.append(
        TopicSpec(
            names.snapshots,
            kafka.partitions,
            kafka.replication,
            {
                "cleanup.policy": "compact",
                "max.message.bytes": str(SNAPSHOT_MAX_BYTES),
                # Compaction only cleans closed segments: roll them often enough that a worker
                # taking over reads a few snapshots per partition, not days of them.
                "segment.ms": str(SNAPSHOT_SEGMENT_MS),
                "min.cleanable.dirty.ratio": "0.1",
            },
        )
    )
    return specs


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics; return the names created. Raises :class:`TopicError`."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    specs = topic_specs(settings)
    try:
        admin = KafkaAdminClient(
            client_id=f"{settings.service.app_id}-admin",
            request_timeout_ms=int(timeout_s * 1000),
            **client_options(settings, "admin"),
        )
    except KafkaError as exc:
        raise TopicError(
            f"cannot reach the Kafka broker at {settings.kafka.bootstrap}: {exc!r}"
        ) from None
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        created: list[str] = []
        if missing:
            result = admin.create_topics(
                {
                    spec.name: {
                        "num_partitions": spec.partitions,
                        "replication_factor": spec.replication,
                        "configs": spec.config,
                    }
                    for spec in missing
                },
                timeout_ms=int(timeout_s * 1000),
                raise_errors=False,
            )
            for topic in result["topics"]:
                code = topic["error_code"]
                if code == 0:
                    created.append(topic["name"])
                elif code != TOPIC_EXISTS:  # another worker was quicker: fine
                    raise TopicError(
                        f"cannot create topic {topic['name']}: error {code} "
                        f"{topic.get('error_message') or ''}".strip()
                    )
            if created:
                admin.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
                log.info("created topics: %s", ", ".join(created))
        _check_copartitioned(admin, settings)
        return created
    except KafkaError as exc:
        raise TopicError(f"topic set-up failed on {settings.kafka.bootstrap}: {exc!r}") from None
    finally:
        admin.close()


def _check_copartitioned(admin: Any, settings: Settings) -> None:
    names = settings.kafka.topics
    counts = {
        topic["name"]: len(topic["partitions"])
        for topic in admin.describe_topics([names.events, names.labels])
    }
    if counts.get(names.events) != counts.get(names.labels):
        raise TopicError(
            f"topics {names.events} ({counts.get(names.events)} partitions) and {names.labels} "
            f"({counts.get(names.labels)} partitions) must have the same number of partitions: "
            "a label is joined on the partition of its event"
        )


@dataclass(frozen=True)
class TopicStatus:
    name: str
    #: "created", "exists" or "missing"
    status: str
    partitions: int
    expected_partitions: int


def topic_statuses(settings: Settings, created: Sequence[str] = ()) -> list[TopicStatus]:
    """Each driftline topic: whether it exists (or was just ``created``), its partitions."""
    specs = topic_specs(settings)
    admin = make_admin(settings)
    try:
        counts: dict[str, int] = {}
        for topic in admin.describe_topics([spec.name for spec in specs]):
            if topic.get("error_code", 0) == 0 and topic.get("partitions"):
                counts[topic["name"]] = len(topic["partitions"])
    finally:
        admin.close()

    def status(name: str) -> str:
        return "missing" if name not in counts else "created" if name in created else "exists"

    return [
        TopicStatus(spec.name, status(spec.name), counts.get(spec.name, 0), spec.partitions)
        for spec in specs
    ]


def prepare_topics(settings: Settings, wait_s: float = 0.0) -> list[str]:
    """Wait (at most ``wait_s``, at least one connect timeout) for the broker, then create the
    missing topics; the names created. :class:`BrokerUnreachable` if the broker never answers,
    :class:`TopicError` if the topics cannot be made or are not co-partitioned."""
    wait_for_broker(settings, wait_s)
    return ensure_topics(settings)
