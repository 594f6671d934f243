"""``driftline produce``: events into the ``events`` topic, late labels into ``labels``.

The Kafka key of an event is its ``key`` when it has one, else its ``id``; a late label is keyed
like its event, so both land in the same partition and reach the worker that holds the event:

>>> encode_event({"id": 7, "x": {"a": 1.0}, "y": True}, strip_label=True)
(b'7', b'{"id":7,"x":{"a":1.0}}', {'id': 7, 'y': True})
>>> encode_event(b'{"id": "e1", "key": "s-3", "x": {}}', strip_label=False)
(b's-3', b'{"id": "e1", "key": "s-3", "x": {}}', None)

A JSONL line goes out exactly as it is in the file (only a label to strip makes it re-encoded),
also when it is not valid JSON: the worker dead-letters it with its original bytes.

>>> encode_event(b'{"id": 1, "x": {', strip_label=True)
(None, b'{"id": 1, "x": {', None)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from driftline.cli.args import (
    add_bootstrap_argument,
    add_source_arguments,
    non_negative_int,
    positive_float,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)
from driftline.label_order import record_time
from driftline.learners.events import Unparsed
from driftline.live.kafka_clients import BrokerUnreachable, make_producer
from driftline.live.topics import prepare_topics
from driftline.progress import Progress

if TYPE_CHECKING:
    from kafka import KafkaProducer

    from driftline.settings import Settings

#: Seconds to wait for the broker to acknowledge what is still in flight at the end.
FLUSH_TIMEOUT_S = 30.0
#: Longest single sleep of the pacing loop, so Ctrl-C and progress stay responsive.
MAX_SLEEP_S = 0.25

T = TypeVar("T")


def _key_of(obj: Any) -> bytes | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get("key")
    if value is None:
        value = obj.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).encode()


def encode_event(
    item: bytes | dict[str, Any] | Unparsed, strip_label: bool
) -> tuple[bytes | None, bytes, dict[str, Any] | None]:
    """``(kafka key, value bytes, late label or None)`` of one event.

    ``strip_label``: take ``y`` out of the event and return it as ``{"id", "y"}`` to be sent
    later; an event without ``y`` (or without ``id``) keeps no label to send.
    """
    if isinstance(item, Unparsed):
        # A row the source could not parse (a broken CSV line): its original bytes go as they
        # are, and the worker dead-letters them with the reason, as a backtest does.
        original = item.original
        return None, original.encode() if isinstance(original, str) else original, None
    if isinstance(item, bytes | bytearray):
        raw = bytes(item)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, raw, None
    else:
        obj, raw = item, b""
    key = _key_of(obj)
    label = None
    if strip_label and isinstance(obj, dict) and obj.get("y") is not None and "id" in obj:
        label = {"id": obj["id"], "y": obj["y"]}
        obj = {k: v for k, v in obj.items() if k != "y"}
        raw = b""
    return key, raw or orjson.dumps(obj), label


class EventSender:
    """Send events (and, with ``label_delay`` > 0, their labels ``label_delay`` events later).

    With late labels every record carries a time (``ts``), so that the worker applies each label
    where ``driftline backtest --label-delay`` does (see :mod:`driftline.label_order`): an event keeps
    its own ``ts``; one without gets the time it is sent (to the microsecond, never the same
    twice) or, once events had their own, the time of the event before it; a label gets the time
    of the event it is sent after.

    ``send`` does not wait for the broker; :meth:`finish` sends the labels still held back,
    waits for every acknowledgement and reports what failed.
    """

    def __init__(self, producer: KafkaProducer, settings: Settings, label_delay: int = 0) -> None:
        self.producer = producer
        self.events_topic = settings.kafka.topics.events
        self.labels_topic = settings.kafka.topics.labels
        self.label_delay = label_delay
        self.held: deque[tuple[bytes | None, dict[str, Any]]] = deque()
        self.events = 0
        self.labels = 0
        self.failed = 0
        self.first_error: str | None = None
        self.event_time = -math.inf  # of the last event sent
        self.timed = False  # events have their own ts

    def _failure(self, exc: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self._failure)

    def send(self, item: bytes | dict[str, Any]) -> None:
        key, value, label = encode_event(item, strip_label=self.label_delay > 0)
        if self.label_delay > 0:
            value = self._timed(value)
        self._send(self.events_topic, key, value)
        self.events += 1
        if label is not None:
            self.held.append((key, label))
        while len(self.held) > self.label_delay:
            self._send_label()

    def _timed(self, value: bytes) -> bytes:
        own = record_time(value, None)
        if own is not None:
            self.timed = True
            self.event_time = max(self.event_time, own)
            return value
        if self.timed:
            stamp = self.event_time
        else:  # microseconds: an event and the label sent after it never share a time
            stamp = max(round(time.time() * 1000, 3), round(self.event_time + 0.001, 3))
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # dead-lettered by the worker as it is
        if not isinstance(obj, dict):
            return value
        self.event_time = stamp
        return orjson.dumps({**obj, "ts": stamp})

    def _send_label(self) -> None:
        key, label = self.held.popleft()
        if self.event_time > -math.inf:
            label = {**label, "ts": self.event_time}
        self._send(self.labels_topic, key, orjson.dumps(label))
        self.labels += 1

    def finish(self, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        """Send the held-back labels, then wait for the broker to acknowledge everything."""
        from kafka.errors import KafkaTimeoutError

        while self.held:
            self._send_label()
        try:
            self.producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            if self.first_error is None:
                self.first_error = f"not acknowledged within {timeout_s:g} s"
            self.failed = max(self.failed, 1)


def paced(items: Iterable[T], rate: float | None) -> Iterator[T]:
    """``items`` at ``rate`` per second, on a schedule from the first one: a slow send is made
    up by not sleeping, never by a burst above the schedule."""
    if not rate:
        yield from items
        return
    started: float | None = None
    for n, item in enumerate(items):
        now = time.perf_counter()
        if started is None:
            started = now
        delay = started + n / rate - now
        while delay > 0:
            time.sleep(min(delay, MAX_SLEEP_S))
            delay = started + n / rate - time.perf_counter()
        yield item


def send_all(
    settings: Settings,
    items: Iterable[bytes | dict[str, Any]],
    *,
    total: int | None,
    label: str,
    label_delay: int = 0,
) -> int:
    """Produce ``items`` with a progress line and a final count; the command's exit status."""
    from kafka.errors import KafkaError

    from driftline.live.kafka_clients import TopicError

    try:
        prepare_topics(settings)
    except TopicError as exc:
        # Perhaps not allowed to create topics here: they may exist, else the send says so.
        print(f"driftline {label}: warning: {exc}", file=sys.stderr)
    # With late labels, no lingering: a label then leaves before the events sent after it (a
    # full batch of events would otherwise overtake a lingering batch of labels, and the worker
    # could predict them before the label that precedes them reached the broker).
    producer = make_producer(settings, **({"linger_ms": 0} if label_delay else {}))
    sender = EventSender(producer, settings, label_delay)
    progress = Progress(total, label)
    started = time.perf_counter()
    status = 0
    try:
        for item in items:
            sender.send(item)
            progress.update(sender.events)
        sender.finish()
    except KafkaError as exc:
        # A broker that went away mid-run: the buffer filled up and send() gave up.
        raise BrokerUnreachable(
            settings.kafka.bootstrap,
            f"lost after {sender.events:,} events: {type(exc).__name__}: {exc}",
        ) from None
    except KeyboardInterrupt:
        status = 130
        sender.finish(timeout_s=5.0)
    finally:
        progress.close()
        producer.close(timeout=5)
    seconds = time.perf_counter() - started
    line = f"{label}: {sender.events:,} events to {sender.events_topic}"
    if label_delay > 0:
        line += f", {sender.labels:,} labels to {sender.labels_topic} ({label_delay} events late)"
    line += f" in {seconds:.1f} s ({sender.events / max(seconds, 1e-9):,.0f} events/s)"
    if status == 130:
        line += "; interrupted"
    print(line)
    if sender.failed:
        print(
            f"driftline {label}: {sender.failed:,} records were not delivered "
            f"(first: {sender.first_error})",
            file=sys.stderr,
        )
        return 1
    return status


@reports_kafka_errors
def cmd_produce(args: argparse.Namespace) -> int:
    from driftline.cli.args import source_from_args

    settings = settings_from_args(args)
    source = source_from_args(args)
    return send_all(
        settings,
        paced(source.items, args.rate),
        total=source.total,
        label="produce",
        label_delay=args.label_delay,
    )


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    p = sub.add_parser(
        "produce",
        help="send a built-in stream or a file to the events topic",
        description=wrap(
            "Send events to the events topic, keyed by their `key` (else their `id`). "
            "JSONL lines go out as they are, corrupt ones included (the worker dead-letters them). "
            "With --label-delay N the label `y` is taken out of each event and sent N events later "
            'to the labels topic as {"id", "y"}, with the event\'s key.'
        ),
        epilog="examples:\n  driftline produce --dataset sea-abrupt --rate 200\n"
        "  driftline produce --file events.jsonl --label-delay 500\n"
        "  driftline produce --file data.csv --target y --id-column id",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p)
    p.add_argument(
        "--rate",
        type=positive_float,
        metavar="EPS",
        help="events per second (default: as fast as the broker takes them)",
    )
    p.add_argument(
        "--label-delay",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="send each label N events after its event (default 0: inline in the event)",
    )
    add_bootstrap_argument(p)
    commands["produce"] = cmd_produce
