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


def test_taken_a_few_at_a_time_the_order_is_the_same_as_taken_at_once() -> None:
    def filled() -> LabelOrder:
        order = LabelOrder(max_idle_ms=50)
        order.add_events([event(i, 10 * i) for i in range(12)], now_ms=0)
        order.add_labels([label(i, 10 * i + 5) for i in range(0, 12, 3)], now_ms=0)
        return order

    at_once = flat(filled().take(None, 100))
    order, sliced = filled(), []
    while runs := order.take(None, 100, limit=5):
        assert sum(len(records) for _, records in runs) <= 5
        sliced += flat(runs)
    assert sliced == at_once
    assert len(at_once) == 16  # every event and label: the labels partition caught up 100 ms on


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
    # What the worker logs about it: which record, its time, and the one it came after.
    assert order.last_reordered.startswith(
        "a label of time 20 read at 0 came after an event of time 30"
    )

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


def test_events_are_decoded_once_and_the_engine_gives_what_it_gives_for_their_bytes() -> None:
    """The order reads each event's ``ts``; the event goes on decoded (``Decoded``) so that the
    engine does not decode it again. Its outputs are those of the same bytes, dead letters and
    their reasons included (the size limit applies to the original bytes)."""
    import driftline
    from driftline.learners.engine import Engine
    from driftline.learners.events import Decoded

    config = driftline.load_config({"engine": {"max_event_bytes": 200}})
    values = [
        orjson.dumps({"id": i, "ts": 1000 + i, "x": {"a": float(i % 5), "b": i % 3}, "y": i % 2})
        for i in range(300)
    ]
    values[50] = orjson.dumps({"id": 50, "ts": 1050, "x": "high", "y": 0})  # x not an object
    values[60] = orjson.dumps({"id": 60, "ts": 1060, "x": {"a": 1.0, "pad": "z" * 300}, "y": 1})
    values[70] = b'{"id": 70, "ts": 1070, "x": '  # not JSON: stays bytes
    values[80] = orjson.dumps([{"ts": 1}])  # JSON, not an object: stays bytes
    order = LabelOrder(max_idle_ms=0)
    order.add_events([Record(0, i, 1000 + i, v) for i, v in enumerate(values)])
    order.add_labels([Record(0, 0, 5000, orjson.dumps({"id": 1, "y": 1, "ts": 5000}))])
    runs = order.take(0.0, 0.0)
    released = [r for kind, records in runs if kind == "events" for r in records]
    labels = [r for kind, records in runs if kind == "labels" for r in records]
    assert [type(r.value) for r in labels] == [bytes]
    kinds = {i: type(r.value) for i, r in enumerate(released)}
    assert kinds[70] is bytes and kinds[80] is bytes and kinds[0] is Decoded
    assert sum(k is Decoded for k in kinds.values()) == 298

    def outputs(raws: list[object]) -> tuple[bytes, bytes]:
        engine = Engine(config)
        for offset, raw in enumerate(raws):
            engine.process(raw, offset, 1000 + offset)  # type: ignore[arg-type]
        out = engine.outputs.drain()
        keys = orjson.OPT_NON_STR_KEYS  # (class probabilities are keyed by the class)
        return (
            orjson.dumps(out.predictions, option=keys),
            orjson.dumps(out.dead_letters, option=keys),
        )

    decoded, as_bytes = outputs([r.value for r in released]), outputs(list(values))
    assert decoded == as_bytes
    reasons = [d["reason"] for d in orjson.loads(decoded[1])]
    assert reasons == ["bad_x", "oversized", "not_json", "not_object"]
