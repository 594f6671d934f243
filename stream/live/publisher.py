"""Output records: JSON encoding, and a publisher that makes sure the broker takes them.

:class:`Publisher` retries a failed hand-over or delivery with backoff for as long as it takes (a
broker outage stalls the worker, it does not lose outputs); a record too large for the broker is
reported, counted (``driftline_outputs_dropped_total``) and dropped alone. A record may come with
an acknowledgement callback, called once the broker has it (dead letters are counted that way);
the delivery futures must be asyncio futures (``add_done_callback``), as aiokafka's are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from driftline.live.metrics import WorkerMetrics

log = logging.getLogger("driftline.worker")

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
RETRY_BACKOFF_S = (0.2, 5.0)
#: A broker outage fails every send and delivery: one WARNING about it per this many seconds
#: (the others at DEBUG, counted in the next WARNING and in driftline_send_retries_total).
RETRY_WARN_EVERY_S = 10.0

Headers = list[tuple[str, bytes]]
#: Called (no arguments) once the broker has acknowledged the record it came with.
Ack = Callable[[], Any]
#: A record in flight: key, value, headers, acknowledgement callback.
Out = tuple[bytes | None, bytes, Headers | None, Ack | None]
#: ``send(topic, key, value, headers)``: hand a record to the producer, return its delivery future.
SendFunction = Callable[[str, bytes | None, bytes, Headers | None], Awaitable[Awaitable[Any]]]
#: ``send_batches(topic, [(key, value), ...])``: hand records over in batches (one per partition
#: and size limit); return ``[(delivery future, the (key, value) pairs in that batch), ...]``.
BatchSendFunction = Callable[
    [str, list[tuple[bytes | None, bytes]]],
    Awaitable[list[tuple[Awaitable[Any], list[tuple[bytes | None, bytes]]]]],
]


def _default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars that OPT_SERIALIZE_NUMPY does not cover
    if callable(item):
        return item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(record: Mapping[str, Any]) -> bytes:
    """An output record as JSON (non-string keys such as ``True`` in ``proba`` become text)."""
    return orjson.dumps(record, option=JSON_OPTIONS, default=_default)


class OutputTooLarge(Exception):
    """The broker or producer will never accept this record: retrying cannot help."""


class Publisher:
    """Sends output records and makes sure they arrive.

    :meth:`send` and :meth:`send_many` return once the producer has the records; :meth:`flush`
    once every record sent so far is acknowledged. A failed hand-over or delivery is retried with
    backoff, for as long as it takes (a broker outage stalls the worker rather than losing or
    reordering the snapshot guarantee); a record that is too large is reported and dropped.

    :meth:`send_many` hands records over a batch at a time (``send_batches``): a few µs per record
    instead of ~20 for the producer's ``send``, which made publishing a quarter of the worker's
    time. A batch that fails is sent again record by record, so that a record too large for the
    broker is dropped alone.
    """

    def __init__(
        self,
        send: SendFunction,
        metrics: WorkerMetrics,
        is_too_large: Callable[[BaseException], bool],
        send_batches: BatchSendFunction | None = None,
    ) -> None:
        self._send = send
        self._send_batches = send_batches
        self._metrics = metrics
        self._is_too_large = is_too_large
        # (delivery future, topic, [(key, value, headers, ack), ...] in the request behind it)
        self._inflight: deque[tuple[Any, str, list[Out]]] = deque()
        self._warned_at = -RETRY_WARN_EVERY_S
        self._unwarned = 0

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
        ack: Ack | None = None,
    ) -> None:
        """Hand one record over; raises :class:`OutputTooLarge` if the producer refuses it."""
        await self._hand_over(topic, (key, value, headers, ack))
        await self._reap(block=False)

    async def send_many(
        self,
        topic: str,
        records: list[tuple[bytes | None, bytes]],
        acks: Sequence[Ack | None] | None = None,
    ) -> None:
        """Hand records of one topic over (no headers); one too large is logged and dropped.

        ``acks[i]``, when given, is called once the broker has acknowledged ``records[i]`` (never
        for a record that was dropped)."""
        ack_of: list[Ack | None] = list(acks) if acks is not None else [None] * len(records)
        if self._send_batches is None or len(records) < 2:
            for (key, value), ack in zip(records, ack_of, strict=True):
                await self._send_or_drop(topic, (key, value, None, ack))
        else:
            try:
                batches = await self._send_batches(topic, records)
            except Exception as exc:
                # Handing over failed (no metadata: broker gone?); records of batches already
                # handed over are sent twice. Record by record, with retries, instead.
                self._warn("cannot send a batch to %s (%r); sending record by record", topic, exc)
                for (key, value), ack in zip(records, ack_of, strict=True):
                    await self._send_or_drop(topic, (key, value, None, ack))
            else:
                # Batches come back grouped by partition: find each record's callback again.
                by_value: dict[int, list[Ack]] = {}
                if acks is not None:
                    for (_, value), ack in zip(records, ack_of, strict=True):
                        if ack is not None:
                            by_value.setdefault(id(value), []).append(ack)
                for future, batch in batches:
                    self._track(future, topic, [(k, v, None, _take(by_value, v)) for k, v in batch])
        await self._reap(block=False)

    async def flush(self) -> None:
        await self._reap(block=True)

    async def _send_or_drop(self, topic: str, record: Out) -> None:
        try:
            await self._hand_over(topic, record)
        except OutputTooLarge as exc:
            self._metrics.outputs_dropped.labels(topic).inc()
            log.error("an output record was dropped: %s", exc)

    async def _hand_over(self, topic: str, record: Out) -> None:
        key, value, headers, _ = record
        delay = RETRY_BACKOFF_S[0]
        while True:
            try:
                future = await self._send(topic, key, value, headers)
            except Exception as exc:
                if self._is_too_large(exc):
                    raise OutputTooLarge(f"{topic}: {len(value)} bytes: {exc}") from exc
                self._metrics.send_retries.labels(topic).inc()
                self._warn("cannot send to %s (%r); retrying in %.1f s", topic, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_BACKOFF_S[1])
                continue
            self._track(future, topic, [record])
            return

    def _track(self, future: Any, topic: str, records: list[Out]) -> None:
        self._inflight.append((future, topic, records))
        if any(record[3] is not None for record in records):
            # Acknowledged as soon as the broker answers, not when the next send reaps it.
            future.add_done_callback(lambda done: _acknowledge(done, records))

    async def _reap(self, *, block: bool) -> None:
        inflight = self._inflight
        while inflight:
            future, topic, records = inflight[0]
            if not future.done():
                if not block:
                    return
                await asyncio.wait([future])
            inflight.popleft()
            error = None if future.cancelled() else future.exception()
            if error is None and not future.cancelled():
                continue
            if error is not None and self._is_too_large(error) and len(records) == 1:
                size = len(records[0][1])
                self._metrics.outputs_dropped.labels(topic).inc()
                log.error("dropped a %d-byte record for %s: %r", size, topic, error)
                continue
            self._metrics.send_retries.labels(topic).inc(len(records))
            self._warn(
                "delivery of %d record(s) to %s failed (%r); sending again",
                len(records),
                topic,
                error,
            )
            await asyncio.sleep(RETRY_BACKOFF_S[0])
            if len(records) == 1:
                await self._hand_over(topic, records[0])
            else:  # one by one: a record too large for the broker is then dropped alone
                for record in records:
                    await self._send_or_drop(topic, record)

    def _warn(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at < RETRY_WARN_EVERY_S:
            self._unwarned += 1
            log.debug(msg, *args)
            return
        if self._unwarned:
            msg += f" ({self._unwarned} more send failures since the last such warning)"
        log.warning(msg, *args)
        self._warned_at, self._unwarned = now, 0


def _acknowledge(future: Any, records: list[Out]) -> None:
    if future.cancelled() or future.exception() is not None:
        return  # sent again (or dropped) by _reap; a new future acknowledges it
    for record in records:
        if record[3] is not None:
            record[3]()


def _take(by_value: dict[int, list[Ack]], value: bytes) -> Ack | None:
    waiting = by_value.get(id(value))
    return waiting.pop(0) if waiting else None
