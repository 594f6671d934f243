"""One order for the events and late labels of a partition, decided by the data, not by fetches.

A label is applied right before the first event whose time is later than the label's: after every
event of its time or earlier, before any later one. A record's time is its ``ts`` field, else the
timestamp of the Kafka record that carried it (the producer's clock when it was sent); times only
move forward within a topic partition (a record stamped earlier than the one before it takes that
one's time). ``driftline backtest --label-delay N`` follows the same rule (a label's time is that
of the event N later), so a one-partition live run predicts what the backtest predicts, and a
replay after a crash or a takeover predicts what the first run did.

Which side may go next:

* an event, once the labels read reach its time (a label stamped at or after it has been read),
  or the labels partition is caught up with the broker as of a fetch made ``max_idle_ms`` after
  the event was read (at the head of the stream: a label may be on its way); events of a
  partition that has brought no label at all for :data:`NO_LABELS_AFTER_MS` (inline labels
  only) stop waiting until a label comes;
* a label, once an event later than it has been read, or the events partition is caught up and
  has had ``max_idle_ms`` to bring one.

The one case this cannot make deterministic: at the head of the stream, a record that reaches the
broker more than ``max_idle_ms`` after a record of the other topic stamped later than it has been
processed (a lagging producer), or an event that comes after a label of its time or later was
applied. It is still applied, never lost, and counted as ``reordered``; a replay applies it where
its time says.

>>> order = LabelOrder(max_idle_ms=0)
>>> order.add_events([Record(0, 0, 1000, b'{"id": 1}'), Record(0, 1, 3000, b'{"id": 2}')])
>>> order.add_labels([Record(0, 0, 2000, b'{"id": 1, "y": 1}')])
>>> [(kind, [r.offset for r in records]) for kind, records in order.take(0.0, 0.0)]
[('events', [0]), ('labels', [0]), ('events', [1])]
"""

from __future__ import annotations

import math
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from driftline.learners.events import Decoded
from driftline.learners.labels import MAX_CLOCK_SKEW_MS


class Record(NamedTuple):
    """A consumed Kafka record, as much of it as the worker needs. (A named tuple: one is made
    per record, and a frozen dataclass costs twice as much to make.)"""

    partition: int
    offset: int
    timestamp_ms: int | None
    #: The record's value; an event whose ``ts`` was read here: :class:`Decoded` (decoded once).
    value: bytes | Decoded


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def record_time(value: bytes, fallback: float | None) -> float | None:
    """The ``ts`` of a JSON record in ms (sub-millisecond kept), else ``fallback``.

    >>> record_time(b'{"ts": 1.5, "x": {}}', 9.0), record_time(b'{"x": {}}', 9.0)
    (1.5, 9.0)
    >>> record_time(b'{"ts": "1970-01-01T00:00:01.000250Z"}', None)
    1000.25
    """
    return time_and_object(value, fallback)[0]


def time_and_object(value: bytes, fallback: float | None) -> tuple[float | None, Any]:
    """:func:`record_time`, and the JSON object decoded to find it (None: not decoded: no
    ``"ts"`` in the bytes, or not a JSON object)."""
    if b'"ts"' not in value:
        return fallback, None
    try:
        obj = orjson.loads(value)
        ts = obj.get("ts")
    except (orjson.JSONDecodeError, AttributeError):
        return fallback, None
    if type(ts) is int or type(ts) is float:
        return (float(ts) if math.isfinite(ts) else fallback), obj
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            return fallback, obj
        if parsed.tzinfo is not None:
            return (parsed - _EPOCH) // _MICROSECOND / 1000, obj  # exact to the microsecond
    return fallback, obj


class _Side:
    __slots__ = ("queue", "read_time")

    def __init__(self) -> None:
        self.queue: deque[tuple[float, float, Record]] = deque()  # (time, read at (ms), record)
        self.read_time = -math.inf  # the time of the last record read (monotone)

    def add(self, records: list[Record], now_ms: float, keep_decoded: bool = False) -> None:
        """``keep_decoded``: a record decoded to read its time goes on as :class:`Decoded`
        (events: the engine need not decode it again)."""
        t = self.read_time
        append = self.queue.append
        for r in records:
            value: bytes = r.value  # type: ignore[assignment]  # (as read: bytes)
            own, obj = time_and_object(value, r.timestamp_ms)
            if own is not None and r.timestamp_ms is not None:
                own = min(own, r.timestamp_ms + MAX_CLOCK_SKEW_MS)  # as the engine's clock
            if own is not None and own > t:
                t = own
            if keep_decoded and obj.__class__ is dict:
                r = Record(r.partition, r.offset, r.timestamp_ms, Decoded(value, obj))
            append((t, now_ms, r))
        self.read_time = t

    def head_waited(self, other_caught_up_at: float | None, max_idle_ms: float) -> bool:
        """The other side had nothing for the oldest record here: read to the broker's end as
        of a fetch made at least ``max_idle_ms`` after that record was read. (A fetch, not the
        clock: a busy or stalled worker does not fetch, and its stall must not count.)"""
        return (
            other_caught_up_at is not None and other_caught_up_at - self.queue[0][1] >= max_idle_ms
        )


#: A partition that has brought no label at all for this long (ms, by fetches) is taken to have
#: none to bring: its events stop waiting for labels until one is read (inline labels only).
NO_LABELS_AFTER_MS = 5_000.0


class LabelOrder:
    """The events and labels of one partition, released in time order (see the module doc)."""

    def __init__(self, max_idle_ms: float) -> None:
        self.max_idle_ms = max_idle_ms
        self.events = _Side()
        self.labels = _Side()
        self.event_time = -math.inf  # the time of the last event released
        self.label_time = -math.inf  # the time of the last label released
        self.reordered = 0
        self.last_reordered = ""  # what the last reordered record was (the worker logs it)
        self._no_labels_since: float | None = None  # an event first waited for a label here

    def _release_event(self, t: float, read_at: float) -> None:
        if t <= self.label_time:
            self.reordered += 1  # read after a label of its time or later was released
            self.last_reordered = (
                f"an event of time {t:.0f} read at {read_at:.0f} came after a label of time "
                f"{self.label_time:.0f} was released"
            )
        self.event_time = t

    def _no_labels(self, labels_caught_up_at: float | None) -> bool:
        # No label read since this partition was taken over, for NO_LABELS_AFTER_MS of fetches.
        if self.labels.read_time > -math.inf or labels_caught_up_at is None:
            return False
        if self._no_labels_since is None:
            self._no_labels_since = labels_caught_up_at
        return labels_caught_up_at - self._no_labels_since >= NO_LABELS_AFTER_MS

    def add_events(self, records: list[Record], now_ms: float = 0.0) -> None:
        """Events read at ``now_ms`` (the clock of the fetch times given to :meth:`take`)."""
        self.events.add(records, now_ms, keep_decoded=True)

    def add_labels(self, records: list[Record], now_ms: float = 0.0) -> None:
        self.labels.add(records, now_ms)

    def __len__(self) -> int:
        return len(self.events.queue) + len(self.labels.queue)

    def take(
        self,
        events_caught_up_at: float | None,
        labels_caught_up_at: float | None,
        limit: int | None = None,
    ) -> list[tuple[str, list[Record]]]:
        """Release what may go now, in order: ``[("events" | "labels", records), ...]``.

        ``*_caught_up_at``: the time (ms) of the fetch that showed that partition read to the
        broker's end (None: it is not). ``limit``: release at most this many records (the rest
        stays, in its order, for the next call)."""
        events, labels = self.events.queue, self.labels.queue
        runs: list[tuple[str, list[Record]]] = []
        left = math.inf if limit is None else limit

        def emit(kind: str, record: Record) -> None:
            nonlocal left
            left -= 1
            if runs and runs[-1][0] == kind:
                runs[-1][1].append(record)
            else:
                runs.append((kind, [record]))

        max_idle = self.max_idle_ms
        while (events or labels) and left > 0:
            if events and labels:
                if labels[0][0] < events[0][0]:
                    self.label_time = labels[0][0]
                    emit("labels", labels.popleft()[2])
                else:
                    self._release_event(events[0][0], events[0][1])
                    emit("events", events.popleft()[2])
                continue
            if events:
                t = events[0][0]
                if (
                    self.labels.read_time < t
                    and not self.events.head_waited(labels_caught_up_at, max_idle)
                    and not self._no_labels(labels_caught_up_at)
                ):
                    break
                self._release_event(t, events[0][1])
                emit("events", events.popleft()[2])
                continue
            if labels[0][0] < self.event_time:
                self.reordered += 1  # read after an event later than it was released
                self.last_reordered = (
                    f"a label of time {labels[0][0]:.0f} read at {labels[0][1]:.0f} came after "
                    f"an event of time {self.event_time:.0f} was released (events caught up "
                    f"as of {events_caught_up_at}, labels as of {labels_caught_up_at})"
                )
            elif not self.labels.head_waited(events_caught_up_at, max_idle):
                break
            self.label_time = labels[0][0]
            emit("labels", labels.popleft()[2])
        return runs
