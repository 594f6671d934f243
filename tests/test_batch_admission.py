"""A micro-batch's rows admitted with the common case inline give what ``_admit`` row by row
gives: the same events, indexes, dead letters, counters, clock and label classes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.events import MAX_TS_MS, Decoded

X = {"a": 1.0, "b": 2}

#: What each field of a row may be: the plain values the inline path takes, and their
#: neighbours that only ``_admit`` may decide (or reject).
IDS = st.one_of(st.integers(-5, 40), st.sampled_from(["e1", "waits", "", True, 1.5, None, [1]]))
KEYS = st.sampled_from([None, None, "k", 7, "", False, 2.5, {"k": 1}])
TIMES = st.one_of(
    st.none(),
    st.integers(1_700_000_000_000, 1_700_000_200_000),  # some past the skew allowed
    st.sampled_from([-1, MAX_TS_MS + 1, 1.7e12, "2024-01-01T00:00:00Z", "yesterday", True]),
)
LABELS = st.sampled_from([None, None, True, False, 0, 1, 2, "cat", "", 1.5, [1]])
MISSING = object()


def _row(event_id: Any, key: Any, ts: Any, y: Any, form: str, big: bool) -> Any:
    obj: dict[str, Any] = {"x": dict(X)}
    for name, value in (("id", event_id), ("key", key), ("ts", ts), ("y", y)):
        if value is not MISSING:
            obj[name] = value
    if form == "dict":
        return obj
    raw = orjson.dumps({**obj, "pad": "-" * 300} if big else obj)
    return Decoded(raw, orjson.loads(raw))


ROWS = st.lists(
    st.tuples(
        st.one_of(IDS, st.just(MISSING)),
        KEYS,
        st.one_of(TIMES, st.just(MISSING)),
        LABELS,
        st.sampled_from(["decoded", "dict"]),
        st.booleans(),  # larger than engine.max_event_bytes
    ),
    min_size=1,
    max_size=40,
)


def _engine(warm_with: list[Any]) -> Engine:
    cfg = {"engine": {"batch_size": 1000, "max_event_bytes": 200}, "snapshot": {"every_events": 0}}
    engine = Engine(from_mapping(LearningConfig, cfg, ""))
    for offset, y in enumerate(warm_with):  # sets the task, and the classes seen
        engine.process({"id": f"warm{offset}", "x": dict(X), "y": y}, offset)
    engine.process({"id": "waits", "x": dict(X)}, len(warm_with))  # an id that waits
    return engine


def _admit_each(engine: Engine, raws: list[Any], offsets: list[int], ts: Any, xs: list[Any]):
    """The per-row admission the micro-batch path did before (``_admit``, then the watermark)."""
    events = []
    for raw, offset, x in zip(raws, offsets, xs, strict=True):
        admitted = engine._admit(raw, offset, ts, x)
        if admitted is None:
            continue
        engine.watermark = offset
        event, index = admitted
        if event is not None:
            events.append((event, offset, index))
    return events


def _state(engine: Engine) -> tuple[Any, ...]:
    return (
        engine.counters,
        engine.dead_letter_reasons,
        engine.outputs.dead_letters,
        engine.index,
        engine.watermark,
        engine.clock_ms,
        engine.task,
        engine.binary,
        engine.classes,
    )


@settings(max_examples=300, deadline=None)
@given(
    rows=ROWS,
    warm_with=st.sampled_from([[], [True, False], [0, 1, 2], ["cat", "dog"]]),
    record_ts=st.sampled_from([None, 1_700_000_050_000.0]),
    redelivered=st.integers(0, 3),
)
def test_rows_admitted_inline_are_admitted_as_one_by_one(
    rows: list[tuple[Any, ...]], warm_with: list[Any], record_ts: Any, redelivered: int
) -> None:
    engine = _engine(warm_with)
    raws = [_row(*row) for row in rows]
    # The first rows of the batch may be redeliveries (at or below the watermark).
    start = engine.watermark + 1 - redelivered
    offsets = list(range(start, start + len(raws)))
    xs = [dict(X) for _ in raws]  # the batch's features, as checked by column
    by_row, inline = engine, copy.deepcopy(engine)

    expected = _admit_each(by_row, raws, offsets, record_ts, xs)
    got = inline._admit_rows(raws, offsets, record_ts, xs)

    assert orjson.dumps(got, option=orjson.OPT_NON_STR_KEYS) == orjson.dumps(
        expected, option=orjson.OPT_NON_STR_KEYS
    )
    assert [type(event["y"]) for event, _, _ in got] == [
        type(event["y"]) for event, _, _ in expected
    ]
    assert _state(inline) == _state(by_row)


def test_a_plain_batch_is_admitted_inline() -> None:
    """The point of the inline path: a plain batch never calls ``_admit``."""
    engine = _engine([True, False])
    calls = []
    engine._admit = lambda *args: calls.append(args)  # type: ignore[method-assign]
    raws = [
        _row(
            i,
            "k" if i % 2 else None,
            1_700_000_000_000 + i,
            bool(i % 3) if i % 5 else None,
            "decoded" if i % 2 else "dict",
            False,
        )
        for i in range(100)
    ]
    events = engine._admit_rows(raws, list(range(10, 110)), None, [dict(X)] * 100)
    assert calls == []
    assert [index for _, _, index in events] == list(range(3, 103))
    assert engine.counters["events"] == engine.counters["valid"] == 103
    assert engine.clock_ms == 1_700_000_000_099


def test_an_id_that_waits_for_its_label_is_refused_inline_too() -> None:
    engine = _engine([True, False])
    raws = [
        _row("waits", None, None, None, "decoded", False),
        _row(5, None, None, True, "dict", False),
    ]
    events = engine._admit_rows(raws, [10, 11], None, [dict(X)] * 2)
    assert [event["id"] for event, _, _ in events] == [5]
    assert engine.dead_letter_reasons == {"duplicate_id": 1}
    assert engine.outputs.dead_letters[0]["position"] == 10


def test_rows_admitted_inline_before_a_failing_row_are_counted() -> None:
    """The engine's driver logs an error in a batch and goes on with the engine: the rows
    admitted before it must be in the counters, as the per-row way counted them."""
    engine = _engine([True, False])
    before = engine.counters["events"]

    def fails(*args: Any) -> None:
        raise RuntimeError("a bug in admission")

    engine._admit = fails  # type: ignore[method-assign]
    raws = [_row(1, None, None, True, "dict", False), _row(2, None, True, True, "dict", False)]
    with pytest.raises(RuntimeError):
        engine._admit_rows(raws, [10, 11], None, [dict(X)] * 2)
    assert engine.counters["events"] - before == 1
    assert engine.index == before + 1 and engine.watermark == 10


def test_a_row_without_x_is_refused_even_with_features_given() -> None:
    engine = _engine([True, False])
    events = engine._admit_rows([{"id": 1, "y": True}], [10], None, [dict(X)])
    assert events == []
    assert engine.dead_letter_reasons == {"missing_x": 1}


def test_a_timestamp_past_any_float_is_a_bad_ts_not_a_crash() -> None:
    engine = _engine([True, False])
    raws = [_row(1, None, 10**400, True, "dict", False), _row(2, None, None, True, "dict", False)]
    events = engine._admit_rows(raws, [10, 11], None, [dict(X)] * 2)
    assert [event["id"] for event, _, _ in events] == [2]
    assert engine.dead_letter_reasons == {"bad_ts": 1}
