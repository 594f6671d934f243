"""The order of events and late labels of one partition (driftline.label_order), in memory."""

from __future__ import annotations

import orjson

from driftline.label_order import NO_LABELS_AFTER_MS, LabelOrder, Record


def event(offset: int, ts: float) -> Record:
    return Record(0, offset, None, orjson.dumps({"id": offset, "ts": ts, "x": {}}))


def label(offset: int, ts: float, event_id: int = 0) -> Record:
    return Record(0, offset, None, orjson.dumps({"id": event_id, "y": 1, "ts": ts}))


def flat(runs: list[tuple[str, list[Record]]]) -> list[tuple[str, int]]:
    return [(kind[0], r.offset) for kind, records in runs for r in records]


def test_a_label_goes_after_every_event_of_its_time_or_earlier_and_before_later_ones() -> None:
    order = LabelOrder(max_idle_ms=50)
    order.add_events([event(0, 10), event(1, 20), event(2, 20), event(3, 30)], now_ms=0)
    order.add_labels([label(0, 20), label(1, 25)], now_ms=0)
    # Events 0-2 (times 10, 20, 20), label 0 (20: after its time's events), label 1 (25); event 3
    # (30) waits: no label read has reached 30 and the labels partition is not caught up.
    assert flat(order.take(None, None)) == [("e", 0), ("e", 1), ("e", 2), ("l", 0), ("l", 1)]
    assert flat(order.take(None, None)) == []
    order.add_labels([label(2, 30)], now_ms=10)
    assert flat(order.take(None, None)) == [("e", 3)]  # a label of its time came
    assert order.reordered == 0


def test_at_the_head_an_event_waits_for_a_fetch_made_max_idle_after_it_was_read() -> None:
    order = LabelOrder(max_idle_ms=50)
    order.add_labels([label(0, 5)], now_ms=0)
    order.add_events([event(0, 10)], now_ms=100)
    assert flat(order.take(None, 120)) == [("l", 0)]  # labels caught up, but as of too early
    assert flat(order.take(None, 149)) == []
    assert flat(order.take(None, 150)) == [("e", 0)]


def test_a_label_waits_for_the_events_to_pass_its_time_or_to_be_silent() -> None:
    order = LabelOrder(max_idle_ms=50)
    order.add_events([event(0, 10)], now_ms=0)
    order.add_labels([label(0, 15)], now_ms=0)
    assert flat(order.take(None, None)) == [("e", 0)]
    assert flat(order.take(40, None)) == []  # events caught up, not yet for 50 ms
    assert flat(order.take(60, None)) == [("l", 0)]


def test_records_that_come_out_of_their_time_are_applied_and_counted() -> None:
    order = LabelOrder(max_idle_ms=0)
    order.add_events([event(0, 10), event(1, 30)], now_ms=0)
    assert flat(order.take(None, 0)) == [("e", 0), ("e", 1)]
    order.add_labels([label(0, 20)], now_ms=0)  # its time was before event 1's
    assert flat(order.take(0, 0)) == [("l", 0)]
    assert order.reordered == 1

    order = LabelOrder(max_idle_ms=0)
    order.add_events([event(0, 10)], now_ms=0)
    order.add_labels([label(0, 20)], now_ms=0)
    assert flat(order.take(0, 0)) == [("e", 0), ("l", 0)]  # the events were silent
    order.add_events([event(1, 20)], now_ms=0)  # of the label's time: it belonged before it
    assert flat(order.take(0, 0)) == [("e", 1)]
    assert order.reordered == 1


def test_times_only_move_forward_and_fall_back_to_the_kafka_timestamp() -> None:
    order = LabelOrder(max_idle_ms=0)
    order.add_events(
        [event(0, 50), event(1, 10), Record(0, 2, 70, b'{"id": 2, "x": {}}')], now_ms=0
    )
    assert [t for t, _, _ in order.events.queue] == [50, 50, 70]


def test_with_no_label_at_all_for_a_while_events_stop_waiting() -> None:
    order = LabelOrder(max_idle_ms=10_000)
    order.add_events([event(0, 10)], now_ms=0)
    assert flat(order.take(None, 100)) == []
    assert flat(order.take(None, 100 + NO_LABELS_AFTER_MS)) == [("e", 0)]
    order.add_events([event(1, 20)], now_ms=0)
    assert flat(order.take(None, 200 + NO_LABELS_AFTER_MS)) == [("e", 1)]
