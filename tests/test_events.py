"""The event contract: every reject reason, every accepted form, and no input that crashes it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.learners.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidRecord,
    dead_letter,
    decode_event,
    decode_label,
    parse_timestamp,
    validate_event,
)

NORMALISED_KEYS = {"id", "key", "ts", "x", "y"}


def _reason(raw: bytes | str, **kwargs: Any) -> str:
    with pytest.raises(InvalidRecord) as caught:
        decode_event(raw, **kwargs)
    assert caught.value.detail  # every rejection says what was wrong
    assert str(caught.value).startswith(f"{caught.value.reason}: ")
    return caught.value.reason


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": 1, "x": {}', "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe{}", "not_json"),
        (b'{"id": 1, "x": {"a": NaN}}', "not_json"),  # orjson refuses NaN literals
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
        (b'{"x": {"a": 1}}', "missing_id"),
        (b'{"id": true, "x": {}}', "bad_id"),
        (b'{"id": 1.5, "x": {}}', "bad_id"),
        (b'{"id": "", "x": {}}', "bad_id"),
        (b'{"id": null, "x": {}}', "bad_id"),
        (b'{"id": [1], "x": {}}', "bad_id"),
        (b'{"id": 1}', "missing_x"),
        (b'{"id": 1, "x": [1, 2]}', "bad_x"),
        (b'{"id": 1, "x": "a=1"}', "bad_x"),
        (b'{"id": 1, "x": null}', "bad_x"),
        (b'{"id": 1, "x": {"a": [1]}}', "bad_feature"),
        (b'{"id": 1, "x": {"a": {"b": 1}}}', "bad_feature"),
        (b'{"id": 1, "x": {}, "y": [1]}', "bad_label"),
        (b'{"id": 1, "x": {}, "y": {}}', "bad_label"),
        (b'{"id": 1, "x": {}, "y": ""}', "bad_label"),
        (b'{"id": 1, "x": {}, "ts": true}', "bad_ts"),
        (b'{"id": 1, "x": {}, "ts": "yesterday"}', "bad_ts"),
        (b'{"id": 1, "x": {}, "ts": "2024-01-01T00:00:00"}', "bad_ts"),  # no time zone
        (b'{"id": 1, "x": {}, "ts": [1]}', "bad_ts"),
        (b'{"id": 1, "x": {}, "key": true}', "bad_key"),
        (b'{"id": 1, "x": {}, "key": ""}', "bad_key"),
        (b'{"id": 1, "x": {}, "key": 2.5}', "bad_key"),
    ],
)
def test_broken_event_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    assert _reason(raw) == reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"id": 1, "x": {"a": math.nan}}, "non_finite"),
        ({"id": 1, "x": {"a": math.inf}}, "non_finite"),
        ({"id": 1, "x": {"a": -math.inf}}, "non_finite"),
        ({"id": 1, "x": {"a": 1.0}, "y": math.inf}, "bad_label"),
        ({"id": 1, "x": {"a": 1.0}, "y": math.nan}, "bad_label"),
        ({"id": 1, "x": {"a": 1.0}, "ts": math.inf}, "bad_ts"),
        ({"id": 1, "x": {"a": b"bytes"}}, "bad_feature"),
    ],
)
def test_non_finite_values_in_a_decoded_event_are_rejected(event: dict, reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_event(event)
    assert caught.value.reason == reason


def test_non_finite_detail_names_the_feature() -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_event({"id": 1, "x": {"ok": 1.0, "temp": math.inf}})
    assert "'temp'" in caught.value.detail


def test_record_over_the_size_limit_is_rejected_before_decoding() -> None:
    raw = orjson.dumps({"id": 1, "x": {"a": 1.0}})
    assert decode_event(raw, max_bytes=len(raw))["id"] == 1
    assert _reason(raw, max_bytes=len(raw) - 1) == "oversized"
    # Garbage over the limit is "oversized", not "not_json": the size check comes first.
    assert _reason(b"x" * 101, max_bytes=100) == "oversized"


def test_first_problem_wins_when_an_event_has_several() -> None:
    assert _reason(b'{"id": true}') == "bad_id"
    assert _reason(b'{"id": 1, "x": "s", "ts": true}') == "bad_ts"


# --------------------------------------------------------------------------- accepted forms


def test_event_is_normalised_with_every_field() -> None:
    raw = (
        b'{"id": "e-1", "key": "sensor-7", "ts": "2024-01-01T00:00:00Z",'
        b' "x": {"temp": 21.5, "site": "north", "ok": true, "n": 3, "rain": null}, "y": 1}'
    )
    assert decode_event(raw) == {
        "id": "e-1",
        "key": "sensor-7",
        "ts": 1_704_067_200_000,
        "x": {"temp": 21.5, "site": "north", "ok": True, "n": 3},
        "y": 1,
    }


@pytest.mark.parametrize("event_id", [0, -3, 7, "e-1", "0", " "])
def test_integer_and_string_ids_are_accepted(event_id: int | str) -> None:
    assert decode_event(orjson.dumps({"id": event_id, "x": {}}))["id"] == event_id


@pytest.mark.parametrize("key", [5, "sensor-7"])
def test_integer_and_string_keys_are_accepted(key: int | str) -> None:
    assert decode_event(orjson.dumps({"id": 1, "key": key, "x": {}}))["key"] == key


@pytest.mark.parametrize(
    ("ts", "epoch_ms"),
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200_000),
        ("2024-01-01T00:00:00.250Z", 1_704_067_200_250),
        (1_704_067_200_000, 1_704_067_200_000),
        (1_704_067_200_000.9, 1_704_067_200_000),
        (None, None),
    ],
)
def test_iso_and_epoch_timestamps_become_epoch_milliseconds(ts: Any, epoch_ms: int | None) -> None:
    assert decode_event(orjson.dumps({"id": 1, "ts": ts, "x": {}}))["ts"] == epoch_ms
    assert parse_timestamp(ts) == epoch_ms


@pytest.mark.parametrize("label", [True, False, 0, 3, -1, 2.5, "cat"])
def test_every_label_kind_is_accepted(label: Any) -> None:
    y = decode_event(orjson.dumps({"id": 1, "x": {}, "y": label}))["y"]
    assert y == label and type(y) is type(label)


def test_null_features_are_dropped_and_null_label_means_unlabelled() -> None:
    event = decode_event(b'{"id": 1, "x": {"a": null, "b": 2.0}, "y": null}')
    assert event["x"] == {"b": 2.0}
    assert event["y"] is None


def test_text_input_is_accepted_like_bytes() -> None:
    assert decode_event('{"id": 1, "x": {"a": 1}}') == decode_event(b'{"id": 1, "x": {"a": 1}}')


def test_late_label_is_validated() -> None:
    assert decode_label(b'{"id": "e-1", "y": true}') == {"id": "e-1", "y": True, "ts": None}
    assert decode_label(b'{"id": 3, "y": 2.5, "ts": 1000}') == {"id": 3, "y": 2.5, "ts": 1000}
    for raw, reason in [
        (b'{"y": true}', "missing_id"),
        (b'{"id": 1}', "missing_label"),
        (b'{"id": 1, "y": null}', "missing_label"),
        (b'{"id": 1, "y": [1]}', "bad_label"),
        (b'{"id": false, "y": 1}', "bad_id"),
        (b"[]", "not_object"),
        (b"{", "not_json"),
    ]:
        with pytest.raises(InvalidRecord) as caught:
            decode_label(raw)
        assert caught.value.reason == reason, raw


# --------------------------------------------------------------------------- dead letters


def test_dead_letter_keeps_the_original_bytes_and_the_reason() -> None:
    raw = b'{"id": 1,  "x": "oops"}'
    with pytest.raises(InvalidRecord) as caught:
        decode_event(raw)
    record = dead_letter(raw, caught.value, "events", 17)
    assert record == {
        "reason": "bad_x",
        "detail": '"x" must be an object, got str',
        "source": "events",
        "position": 17,
        "original": raw.decode(),
        "encoding": "utf-8",
    }


def test_dead_letter_of_non_utf8_bytes_is_hex() -> None:
    raw = b"\xff\x00garbage\xfe"
    with pytest.raises(InvalidRecord) as caught:
        decode_event(raw)
    record = dead_letter(raw, caught.value, "events")
    assert record["reason"] == "not_json"
    assert record["encoding"] == "hex"
    assert bytes.fromhex(record["original"]) == raw
    assert record["position"] is None


# --------------------------------------------------------------------------- properties

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
# Objects that often get as far as the later checks: the contract's own field names.
EVENTISH = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_VALUES,
        "key": JSON_VALUES,
        "ts": JSON_VALUES | st.datetimes().map(lambda d: d.isoformat()),
        "x": st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=4) | JSON_VALUES,
        "y": JSON_VALUES,
    },
)


def _decoded_or_rejected(raw: bytes) -> None:
    try:
        event = decode_event(raw)
    except InvalidRecord as error:
        record = dead_letter(raw, error, "events")
        if record["encoding"] == "hex":
            assert bytes.fromhex(record["original"]) == raw
        else:
            assert record["original"].encode() == raw
        return
    assert set(event) == NORMALISED_KEYS
    assert isinstance(event["x"], dict) and None not in event["x"].values()
    assert event["ts"] is None or type(event["ts"]) is int


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(JSON_VALUES | EVENTISH)
def test_any_json_value_is_either_an_event_or_an_invalid_record(value: Any) -> None:
    _decoded_or_rejected(orjson.dumps(value))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    _decoded_or_rejected(raw)


FEATURE_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(min_value=-1e15, max_value=1e15)
    | st.text(max_size=6)
)
IDS = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(min_size=1, max_size=8)
LABELS = (
    st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(min_value=-1e15, max_value=1e15)
    | st.text(min_size=1, max_size=6)
)
VALID_EVENTS = st.fixed_dictionaries(
    {"id": IDS, "x": st.dictionaries(st.text(max_size=6), FEATURE_VALUES, max_size=6)},
    optional={
        "key": IDS,
        "ts": st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS),
        "y": LABELS,
    },
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(VALID_EVENTS)
def test_valid_event_passes_and_round_trips(event: dict[str, Any]) -> None:
    decoded = decode_event(orjson.dumps(event))
    assert decoded == {
        "id": event["id"],
        "key": event.get("key"),
        "ts": event.get("ts"),
        "x": {k: v for k, v in event["x"].items() if v is not None},
        "y": event.get("y"),
    }
    # The normalised form is itself a valid event that decodes to itself.
    assert decode_event(orjson.dumps(decoded)) == decoded


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2199, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    )
)
def test_iso_timestamp_matches_its_epoch_milliseconds(moment: datetime) -> None:
    expected = int(moment.timestamp() * 1000)
    assert parse_timestamp(moment.isoformat()) == expected
    assert parse_timestamp(moment.isoformat().replace("+00:00", "Z")) == expected


def test_an_integer_timestamp_past_any_float_is_refused_by_its_size() -> None:
    for huge in (10**400, 10**5000):  # (the second has more digits than Python will print)
        with pytest.raises(InvalidRecord) as caught:
            parse_timestamp(huge)
        assert caught.value.reason == "bad_ts"
    assert "an integer of 16,610 bits" in str(caught.value)
