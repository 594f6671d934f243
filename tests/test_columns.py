"""A micro-batch's features checked per column (driftline.learners.columns): what passes is what
validating each event would give, anything else goes the per-event way, and the engine's outputs
are the same either way."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson
import pytest

from driftline.learners import batch as batch_module
from driftline.learners.columns import plain_features
from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.events import Decoded, validate_features


def test_a_batch_of_floats_under_the_same_names_is_checked_and_framed_at_once() -> None:
    xs = [{"a": 1.5, "b": -2.0}, {"b": 3.0, "a": 0.0}, {"a": -1e15, "b": 1e15}]
    checked = plain_features(xs, 1e15)
    assert checked is not None
    copies, frame = checked
    assert copies == [validate_features(x) for x in xs]
    assert all(copy is not x for copy, x in zip(copies, xs, strict=True))
    assert list(frame.columns) == ["a", "b"]  # the first row's order, as from_records
    assert frame.to_dict("list") == {"a": [1.5, 0.0, -1e15], "b": [-2.0, 3.0, 1e15]}
    assert plain_features([{"only": 2.5}], 1e15) is not None  # one feature


class _Name(str):
    def __str__(self) -> str:
        return "renamed"


def test_a_name_that_is_not_exactly_str_goes_the_per_event_way() -> None:
    """Validation spells it with str() (here "renamed"); JSON encoders refuse a str subclass."""
    xs = [{"a": 1.0, "b": 2.0}, {"a": 1.0, _Name("b"): 3.0}]
    assert list(validate_features(xs[1])) == ["a", "renamed"]
    assert plain_features(xs, 1e15) is None
    assert plain_features([{_Name("b"): 2.0}], 1e15, text_names=True) is None  # the first row
    # Names decoded from JSON are str: past the first row they are not looked at.
    plain = [{"a": 1.0, "b": 2.0}, {"b": 3.0, "a": 1.0}]
    trusted, checked = plain_features(plain, 1e15, text_names=True), plain_features(plain, 1e15)
    assert trusted is not None and checked is not None
    assert trusted[0] == checked[0] and trusted[1].equals(checked[1])


def test_integers_are_numbers_framed_as_from_records_frames_them() -> None:
    import pandas as pd

    xs = [{"a": 1.5, "n": 2, "m": 3}, {"a": 2, "n": 5, "m": 4.0}]
    checked = plain_features(xs, 1e15)
    assert checked is not None
    expected = pd.DataFrame.from_records(xs)
    assert checked[1].dtypes.tolist() == expected.dtypes.tolist() == ["float64", "int64", "float64"]
    assert checked[1].equals(expected)
    assert checked[0] == xs and type(checked[0][0]["n"]) is int
    # An integer just past the limit is out of range, as validation says (no rounding).
    assert plain_features([{"n": 10**15}, {"n": 10**15 + 1}], 1e15) is None
    # From 2**53 on, a limit cannot be checked in floats (2**53 + 1 would round to it).
    assert plain_features([{"n": 1}], 2.0**53) is None
    assert plain_features([{"n": 1}], 2.0**53 - 1) is not None


@pytest.mark.parametrize(
    "second",
    [
        {"a": 1.0, "b": True},  # a boolean: a number to pandas, not to the encoder
        {"a": 1.0, "b": "red"},  # text
        {"a": 1.0, "b": None},  # a null: missing, dropped by validation
        {"a": 1.0},  # a missing name
        {"a": 1.0, "c": 2.0},  # another name, same width
        {"a": 1.0, "b": 2.0, "c": 3.0},  # an extra name
        {"a": 1.0, "b": math.nan},
        {"a": 1.0, "b": math.inf},
        {"a": 1.0, "b": 2e15},  # out of range
        {"a": 1.0, "b": [2.0]},
        {"a": 1.0, "b": 10**400},  # past any float: out of range, not an OverflowError
        "not an object",
        None,
    ],
)
def test_any_other_batch_goes_the_per_event_way(second: Any) -> None:
    assert plain_features([{"a": 0.5, "b": 0.5}, second], 1e15) is None


def test_names_that_are_not_text_and_empty_features_go_the_per_event_way() -> None:
    assert plain_features([{0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}], 1e15) is None
    assert plain_features([{}, {}], 1e15) is None


def _stream(seed: int) -> list[Any]:
    """Batches of 50: plain numbers as dicts, plain numbers decoded by a driver (an integer
    among floats, a column of integers), and batches with one odd event each (a boolean, a null,
    a missing, extra or new name, nan, a value out of range, a bad id, an oversized record), some
    events waiting for a late label."""
    rng = random.Random(seed)
    items: list[Any] = []
    for i in range(1500):
        x: dict[Any, Any] = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.random()}
        event: dict[str, Any] = {"id": i, "ts": 1_704_067_200_000 + 1000 * i, "x": x}
        if i % 9:
            event["y"] = x["a"] + x["b"] > 0.3
        batch, row = divmod(i, 50)
        if row == 17:
            odd = {
                4: ("b", True),
                5: ("b", None),
                6: ("b", 1e16),
                7: ("c", math.nan),
                8: ("d", 0.5),
                12: (7, 0.5),
            }
            if batch in odd:
                name, value = odd[batch]
                x[name] = value
            elif batch == 9:
                del x["c"]
            elif batch == 10:
                event["id"] = ""  # a bad id, features fine
        if batch == 11:
            x["new"] = rng.random()  # a name the encoder has not seen, in every row
        if batch == 3 and row == 17:
            x["b"] = 2  # an integer among floats
        if batch == 15:
            x["c"] = rng.randint(0, 9)  # a column of integers
        if batch % 2:
            original = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, default=repr)
            if batch == 13 and row == 17:
                original += b" " * 600  # oversized (engine.max_event_bytes = 400 below)
            items.append(Decoded(original, event))
        else:
            items.append(event)
    return items


def _run(items: list[Any], check_columns: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    taken: list[bool] = []

    def plain(xs: list[Any], max_abs: float, text_names: bool = False) -> Any:
        checked = plain_features(xs, max_abs, text_names) if check_columns else None
        taken.append(checked is not None)
        return checked

    monkeypatch.setattr(batch_module, "plain_features", plain)
    config = from_mapping(
        LearningConfig,
        {
            "fallback": {"warmup_labels": 0},
            "engine": {"max_event_bytes": 400},
            "policy": {"action": "background"},  # challengers would send batches per event
        },
        "",
    )
    engine = Engine(config)
    for start in range(0, len(items), 50):
        chunk = items[start : start + 50]
        offsets = list(range(start, start + len(chunk)))
        if start == 700:  # a redelivery: the last two events of the batch before come again
            chunk, offsets = items[start - 2 : start + 50], list(range(start - 2, start + 50))
        engine.process_batch(chunk, offsets)
        for item in chunk:  # a caller reusing its dicts must not change what waits for a label
            event = item.value if isinstance(item, Decoded) else item
            if isinstance(event["x"], dict) and "a" in event["x"]:
                event["x"]["a"] = 99.0
        for item in chunk[::3]:  # late labels of some waiting events
            event = item.value if isinstance(item, Decoded) else item
            if "y" not in event and event["id"] != "":
                engine.process_label({"id": event["id"], "y": True})
    out = engine.outputs.drain()
    probes = [{"a": a / 4, "b": -a / 8, "c": 0.5} for a in range(-8, 9)]
    model = engine.slots[None].model
    return (
        taken,
        out.predictions,
        out.dead_letters,
        dict(engine.counters),
        dict(engine.dead_letter_reasons),
        [model.predict_proba_one(x) for x in probes],
    )


def test_the_engine_gives_the_same_outputs_with_and_without_the_column_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    columns = _run(_stream(3), True, monkeypatch)
    per_event = _run(_stream(3), False, monkeypatch)
    taken = columns[0]
    # The first batch runs per event (no task yet) and has no column check; then the plain
    # batches take it, and the one with an odd event each does not.
    plain_batches = [b for b in range(1, 30) if b not in {4, 5, 6, 7, 8, 9, 12}]
    assert [b for b, took in enumerate(taken, 1) if took] == plain_batches
    assert columns[1] == per_event[1]  # every prediction record, field by field
    assert columns[2] == per_event[2]  # every dead letter, with its original and position
    reasons = {letter["reason"] for letter in columns[2]}
    assert {"out_of_range", "non_finite", "bad_id", "oversized"} <= reasons
    assert columns[3] == per_event[3]
    assert columns[3]["duplicates"] == 2
    assert columns[4] == per_event[4]
    assert columns[5] == per_event[5]
