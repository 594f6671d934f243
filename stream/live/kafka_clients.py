"""kafka-python clients for the command line side (produce, replay, alerts, snapshots, topics).

Every client is built from :class:`driftline.settings.Settings`: the bootstrap address, then the
``kafka.client`` passthrough (SASL, TLS, ... in kafka-python's names; ``security.protocol`` is
accepted as ``security_protocol``). A broker that does not answer within a few seconds raises
:class:`BrokerUnreachable`, never a hang and never a traceback:

>>> BrokerUnreachable("127.0.0.1:9", "no answer within 5 s")
BrokerUnreachable('cannot reach the Kafka broker at 127.0.0.1:9 (no answer within 5 s)')

Topics are made by :func:`driftline.live.topics.ensure_topics` (the one the worker uses too; a command
runs :func:`driftline.live.topics.prepare_topics`, after a bounded check that the broker answers), and
``driftline topics create|list`` (:mod:`driftline.cli.topics`) reports what exists.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from driftline.learners.config import ConfigError

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    from driftline.settings import Settings

#: How long a command waits for the broker's first answer before it gives up.
CONNECT_TIMEOUT_S = 5.0


class BrokerUnreachable(Exception):
    """The Kafka broker did not answer (or refused us): one plain sentence, for the user."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        super().__init__(f"cannot reach the Kafka broker at {bootstrap} ({reason})")
        self.bootstrap = bootstrap
        self.reason = reason


# --------------------------------------------------------------------------- client settings


def _known_options() -> dict[str, set[str]]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    return {
        "producer": set(KafkaProducer.DEFAULT_CONFIG),
        "consumer": set(KafkaConsumer.DEFAULT_CONFIG),
        "admin": set(KafkaAdminClient.DEFAULT_CONFIG),
    }


def client_options(settings: Settings, kind: str = "consumer") -> dict[str, Any]:
    """kafka-python connection options for a ``kind`` of client (consumer, producer, admin): the
    bootstrap servers, then the ``kafka.client`` passthrough that kind accepts. Every Kafka client
    of the project is built from these (Faust's, from :func:`driftline.live.topics.normalized_client`).

    A key no kafka-python client knows is a configuration error: silently dropping a security
    setting would surface later as a baffling connection failure.
    """
    known = _known_options()
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka.bootstrap.split(",")}
    for raw_name, value in settings.kafka.client.items():
        name = raw_name.replace(".", "_")
        if not any(name in names for names in known.values()):
            raise ConfigError(
                f"kafka.client.{raw_name}: not a kafka-python client setting "
                "(e.g. security_protocol, sasl_mechanism, sasl_plain_username, ssl_cafile)"
            )
        if name in known[kind]:
            options[name] = value
    return options


def _base_config(settings: Settings, kind: str, client_id: str) -> dict[str, Any]:
    config = client_options(settings, kind)
    config.update(client_id=client_id, bootstrap_timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
    return config


def _first_reachable(bootstrap: str, timeout_s: float) -> None:
    """Raise :class:`BrokerUnreachable` unless a TCP connection to one bootstrap address opens.

    kafka-python's clients find out too, but a client whose bootstrap fails in its constructor
    leaves its IO thread and sockets behind (3.0.12); this check fails first, and says why.
    """
    reasons = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return
        except ConnectionRefusedError:
            reasons.append("connection refused")
        except TimeoutError:
            reasons.append(f"no answer within {timeout_s:g} s")
        except socket.gaierror:
            reasons.append(f"unknown host {host}")
        except (OSError, ValueError) as exc:
            reasons.append(getattr(exc, "strerror", None) or str(exc))
    raise BrokerUnreachable(bootstrap, "; ".join(dict.fromkeys(reasons)))


def _connect(settings: Settings, factory: Callable[..., Any], config: dict[str, Any]) -> Any:
    from kafka.errors import KafkaError, KafkaTimeoutError

    if not config.get("proxy_url") and not config.get("socks5_proxy"):
        _first_reachable(settings.kafka.bootstrap, config["bootstrap_timeout_ms"] / 1000)
    try:
        return factory(**config)
    except KafkaTimeoutError:
        waited = config["bootstrap_timeout_ms"] / 1000
        raise BrokerUnreachable(
            settings.kafka.bootstrap, f"no answer within {waited:g} s"
        ) from None
    except KafkaError as exc:
        raise BrokerUnreachable(settings.kafka.bootstrap, f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:  # TLS files that cannot be read, sockets that cannot be made
        raise BrokerUnreachable(settings.kafka.bootstrap, str(exc)) from None


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer: idempotent, acks from all in-sync replicas, blocking at most 10 s on a
    missing topic or a full buffer, and never auto-creating a topic with the broker's defaults
    (that would break the co-partitioning of events and labels)."""
    from kafka import KafkaProducer

    config = _base_config(settings, "producer", "driftline-cli-producer")
    config.setdefault("linger_ms", 5)
    config.setdefault("max_block_ms", 10_000)
    config.setdefault("allow_auto_create_topics", False)
    config.update(overrides)
    producer: KafkaProducer = _connect(settings, KafkaProducer, config)
    return producer


def make_consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A consumer without a group (partitions assigned by the caller) unless ``group_id`` is
    given; it never auto-creates the topics it looks at."""
    from kafka import KafkaConsumer

    config = _base_config(settings, "consumer", "driftline-cli-consumer")
    config.setdefault("group_id", None)
    config.setdefault("enable_auto_commit", False)
    config.setdefault("allow_auto_create_topics", False)
    config.update(overrides)
    consumer: KafkaConsumer = _connect(settings, KafkaConsumer, config)
    return consumer


def make_admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    config = _base_config(settings, "admin", "driftline-cli-admin")
    config.update(overrides)
    admin: KafkaAdminClient = _connect(settings, KafkaAdminClient, config)
    return admin


def wait_for_broker(settings: Settings, wait_s: float) -> None:
    """Retry until the broker answers, for at most ``wait_s`` seconds (a broker still starting,
    as in docker compose); then :class:`BrokerUnreachable`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            make_admin(settings).close()
            return
        except BrokerUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


class TopicError(Exception):
    """Topics that cannot be created or used as configured."""


def read_to_end(
    consumer: KafkaConsumer, topic: str, on_record: Callable[[Any], Any], *, timeout_s: float
) -> bool:
    """Hand ``on_record`` every record of ``topic``, from the beginning of each partition up to
    its end offset at the time of the call (in offset order per partition), through
    ``consumer`` (assigned here: a consumer without a group). ``False`` when the topic does not
    exist; ``TimeoutError`` when the end is not reached within ``timeout_s`` seconds."""
    from kafka import TopicPartition

    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return False
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    end = consumer.end_offsets(assigned)
    deadline = time.monotonic() + timeout_s
    # Positions, not record counts: a compacted topic has gaps in its offsets, and retention
    # may have removed every record below the end.
    remaining = {tp for tp in assigned if consumer.position(tp) < end[tp]}
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"could not read {topic} to its end within {timeout_s:g} s "
                f"({len(remaining)} partitions left)"
            )
        for tp, batch in consumer.poll(timeout_ms=200).items():
            for record in batch:
                if record.offset < end[tp]:
                    on_record(record)
        remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    return True


def read_topic(settings: Settings, topic: str, *, timeout_s: float = 10.0) -> list[Any]:
    """Every record on ``topic`` from the beginning up to its end at the time of the call
    (kafka-python ``ConsumerRecord`` objects, in offset order per partition).

    Raises :class:`TopicError` when the topic does not exist, or when the end is not reached
    within ``timeout_s`` seconds.
    """
    consumer = make_consumer(settings, client_id="driftline-reader")
    records: list[Any] = []
    try:
        if not read_to_end(consumer, topic, records.append, timeout_s=timeout_s):
            raise TopicError(f"topic {topic} does not exist")
    except TimeoutError:
        raise TopicError(f"reading {topic} took longer than {timeout_s:g} s") from None
    finally:
        consumer.close()
    return records


# --------------------------------------------------------------------------- CLI plumbing
