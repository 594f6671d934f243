"""A micro-batch's events admitted with the common case decided inline.

Admitting an event (:meth:`EventSteps._admit`: the redelivery check, its index, counters,
validation, the label's class, the event clock) is six calls deep: ~1 µs a row, a seventh of a
micro-batch event's time, for what is mostly a few type checks on a live stream whose rows are
alike. Once the batch's features were checked by column (:func:`driftline.learners.columns.plain_features`),
a row that is a decoded JSON object with a plain id, key and epoch-ms ``ts``, and a label of a
class already seen (or none, and an id no event waits with), is admitted here in one loop. Any
other row goes through ``_admit`` in its turn, which gives the errors and dead letters: the
outcome is the per-row way's, row by row (``tests/test_batch_admission.py``).
"""

from __future__ import annotations

from typing import Any

from driftline.learners.event_steps import EventSteps
from driftline.learners.events import MAX_TS_MS, MIN_TS_MS, Decoded
from driftline.learners.labels import MAX_CLOCK_SKEW_MS

Admitted = tuple[dict[str, Any], int, int]  # (event, offset, index)


class BatchAdmission(EventSteps):
    """The admission of :class:`driftline.learners.batch.MicroBatches`."""

    def _known_label(self) -> Any:
        """A test for a label that ``_check_label`` passes without a change (``None``: none
        is known yet): the task is classification and the label's class was seen, with the
        exact type the model was built for (``True`` is ``1`` to a set)."""
        if self.task != "classification" or self.binary is None:
            return None
        classes = self.classes
        if self.binary:
            return lambda y: type(y) is bool and y in classes
        return lambda y: ((kind := type(y)) is int or kind is str) and y in classes

    def _admit_rows(
        self,
        raws: list[Any],
        offsets: list[int],
        record_ts: float | None,
        xs: list[Any],
    ) -> list[Admitted]:
        """``_admit`` of each row, and the watermark after each: the valid events, with their
        offsets and indexes. ``xs``: each row's features, checked with the batch (or ``None``)."""
        events: list[Admitted] = []
        known_label = self._known_label()
        max_bytes = self.config.engine.max_event_bytes
        pending = self.pending
        admit = self._admit
        plain = 0  # rows admitted here, not yet counted (at the end, or before _admit)
        index, watermark, clock = self.index, self.watermark, self.clock_ms
        for raw, offset, x in zip(raws, offsets, xs, strict=True):
            if x is not None and offset > watermark and known_label is not None:
                # (x: the batch was checked, so each row is a decoded object, or a dict given,
                # with its "x": checked by the caller, looked up again here all the same.)
                obj = raw.value if type(raw) is Decoded else raw if type(raw) is dict else None
                if obj is not None and "x" not in obj:
                    obj = None
            else:
                obj = None
            if obj is not None and (type(raw) is dict or len(raw.original) <= max_bytes):
                event_id, key, ts, y = obj.get("id"), obj.get("key"), obj.get("ts"), obj.get("y")
                if (
                    ((kind := type(event_id)) is int or (kind is str and event_id != ""))
                    and (key is None or (kind := type(key)) is int or (kind is str and key != ""))
                    and (ts is None or (type(ts) is int and MIN_TS_MS <= ts <= MAX_TS_MS))
                    and (known_label(y) if y is not None else event_id not in pending)
                ):
                    events.append(
                        ({"id": event_id, "key": key, "ts": ts, "x": x, "y": y}, offset, index)
                    )
                    index += 1
                    plain += 1
                    watermark = offset
                    # _tick: the event's time, else the record's, at most a minute past it.
                    t = ts if ts is not None else record_ts
                    if t is not None and record_ts is not None:
                        t = min(t, record_ts + MAX_CLOCK_SKEW_MS)
                    if t is not None and t > clock:
                        clock = t
                    continue
            # The rows before, counted first: _admit may raise (the engine's driver goes on).
            self.index, self.watermark, self.clock_ms = index, watermark, clock
            if plain:
                self.counters["events"] += plain
                self.counters["valid"] += plain
                plain = 0
            admitted = admit(raw, offset, record_ts, x)
            if admitted is not None:
                self.watermark = offset
                event, at = admitted
                if event is not None:
                    events.append((event, offset, at))
                    if event["y"] is not None:  # it may have set the task, or a new class
                        known_label = self._known_label()
            index, watermark, clock = self.index, self.watermark, self.clock_ms
        self.index, self.watermark, self.clock_ms = index, watermark, clock
        counters = self.counters
        counters["events"] += plain
        counters["valid"] += plain
        return events
