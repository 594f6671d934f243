"""The event contract: decode and validate input events and late labels.

An event is a JSON object::

    {"id": "e-1", "key": "sensor-7", "ts": 1700000000000, "x": {"temp": 21.5}, "y": 1}

* ``id``: string or integer, required.
* ``key``: optional string or integer (per-key models, Kafka message key).
* ``ts``: optional, epoch milliseconds or an ISO-8601 string; normalised to epoch milliseconds.
* ``x``: object of feature name to number, string, boolean or null (null means "missing").
* ``y``: optional label: number, string or boolean.

A late label is ``{"id": ..., "y": ...}``.

Anything else is rejected with :class:`InvalidRecord`, whose ``reason`` is a short machine-readable
code (used as a metric label and in the dead-letter record) and whose ``detail`` says precisely what
was wrong.

>>> decode_event(b'{"id": 7, "x": {"a": 1.5, "b": null}, "y": true}')
{'id': 7, 'key': None, 'ts': None, 'x': {'a': 1.5}, 'y': True}
>>> decode_event(b'{"x": {}}')
Traceback (most recent call last):
...
learners.events.InvalidRecord: missing_id: the event has no "id"
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

#: Records larger than this are rejected before decoding (Kafka's default message limit is 1 MB).
DEFAULT_MAX_BYTES = 1_000_000
#: Larger feature magnitudes are rejected: one finite 1e308 would overflow every running variance
#: (guard, scalers, monitors) for good. ``engine.max_abs_value`` changes it.
DEFAULT_MAX_ABS = 1e15
#: Epoch milliseconds beyond this (year ~287,000) are not a time: 2**53 keeps them exact floats.
MAX_TS_MS = 2**53

Label = bool | int | float | str


class InvalidRecord(ValueError):
    """A record that breaks the contract. ``reason`` is a stable code, ``detail`` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _loads(raw: bytes | str, max_bytes: int) -> Any:
    if len(raw) > max_bytes:
        raise InvalidRecord("oversized", f"record is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("not_json", f"not valid JSON ({exc})") from None


def _check_id(value: Any, field: str = "id") -> str | int:
    # bool is an int subclass: an id of `true` is almost certainly a bug upstream.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord(
            f"bad_{field}", f'"{field}" must be a string or an integer, got {value!r}'
        )
    if isinstance(value, str) and not value:
        raise InvalidRecord(f"bad_{field}", f'"{field}" must not be empty')
    return value


def parse_timestamp(value: Any) -> int | None:
    """Epoch milliseconds (int or float) or ISO-8601 text to epoch milliseconds.

    >>> parse_timestamp("2024-01-01T00:00:00Z")
    1704067200000
    >>> parse_timestamp(1704067200000.0)
    1704067200000
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRecord("bad_ts", f'"ts" must be epoch milliseconds or ISO-8601, got {value!r}')
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_TS_MS:
            raise InvalidRecord("bad_ts", f'"ts" must be epoch milliseconds, got {value!r}')
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecord("bad_ts", f'"ts" is not ISO-8601: {value!r}') from None
        if parsed.tzinfo is None:
            raise InvalidRecord("bad_ts", f'"ts" needs a time zone (e.g. "Z"): {value!r}')
        return int(parsed.timestamp() * 1000)
    raise InvalidRecord("bad_ts", f'"ts" must be epoch milliseconds or ISO-8601, got {value!r}')


def check_label(value: Any) -> Label:
    """A label is a finite number, a boolean or a non-empty string."""
    if isinstance(value, bool | str):
        if isinstance(value, str) and not value:
            raise InvalidRecord("bad_label", '"y" must not be an empty string')
        return value
    if isinstance(value, int | float):
        if not -DEFAULT_MAX_ABS <= value <= DEFAULT_MAX_ABS:
            raise InvalidRecord("bad_label", f'"y" must be finite and within ±1e15, got {value!r}')
        return value
    raise InvalidRecord("bad_label", f'"y" must be a number, string or boolean, got {value!r}')


def validate_features(
    x: Any, max_abs: float = DEFAULT_MAX_ABS
) -> dict[str, float | int | str | bool]:
    """Check the feature object; nulls (missing values) are dropped."""
    if not isinstance(x, dict):
        raise InvalidRecord("bad_x", f'"x" must be an object, got {type(x).__name__}')
    clean: dict[str, float | int | str | bool] = {}
    low = -max_abs
    for name, value in x.items():
        kind = type(value)
        # Exact type checks first: this loop runs for every feature of every event.
        if kind is float or kind is int:
            if not low <= value <= max_abs:  # also false for nan
                if kind is float and value - value != 0.0:  # inf - inf, nan - nan are nan
                    raise InvalidRecord("non_finite", f"feature {name!r} is {value!r}")
                raise InvalidRecord(
                    "out_of_range", f"feature {name!r} is {value!r}, beyond ±{max_abs:g}"
                )
        elif kind is str or kind is bool:
            pass
        elif value is None:
            continue
        else:
            raise InvalidRecord(
                "bad_feature",
                f"feature {name!r} must be a number, string, boolean or null, got {kind.__name__}",
            )
        if type(name) is not str:
            # JSON names are text; a decoded dict may say 0 where JSON says "0". One spelling,
            # or per-record and micro-batch models (DataFrame columns) would differ.
            name = str(name)
        clean[name] = value
    return clean


def validate_event(obj: Any, max_abs: float = DEFAULT_MAX_ABS) -> dict[str, Any]:
    """Validate a decoded event and return it normalised (``id``, ``key``, ``ts``, ``x``, ``y``)."""
    if type(obj) is not dict and not isinstance(obj, dict):
        raise InvalidRecord(
            "not_object", f"an event must be a JSON object, got {type(obj).__name__}"
        )
    get = obj.get
    event_id = get("id")
    # Exact-type fast paths first: this runs for every event; the checks below give the errors.
    if (type(event_id) is not int and type(event_id) is not str) or event_id == "":
        if "id" not in obj:
            raise InvalidRecord("missing_id", 'the event has no "id"')
        event_id = _check_id(event_id)
    x = get("x")
    if x is None and "x" not in obj:
        raise InvalidRecord("missing_x", 'the event has no "x" (feature object)')
    key = get("key")
    if key is not None:
        key = _check_id(key, "key")
    ts = get("ts")
    y = get("y")
    return {
        "id": event_id,
        "key": key,
        "ts": ts if type(ts) is int and 0 <= ts <= MAX_TS_MS else parse_timestamp(ts),
        "x": validate_features(x, max_abs),
        "y": None if y is None else y if type(y) is bool else check_label(y),
    }


def decode_event(
    raw: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES, max_abs: float = DEFAULT_MAX_ABS
) -> dict[str, Any]:
    """Decode JSON bytes and validate them as an event; raises :class:`InvalidRecord`."""
    return validate_event(_loads(raw, max_bytes), max_abs)


def validate_label(obj: Any) -> dict[str, Any]:
    """Validate a decoded late label ``{"id": ..., "y": ...}``."""
    if not isinstance(obj, dict):
        raise InvalidRecord(
            "not_object", f"a label must be a JSON object, got {type(obj).__name__}"
        )
    if "id" not in obj:
        raise InvalidRecord("missing_id", 'the label has no "id"')
    if obj.get("y") is None:
        raise InvalidRecord("missing_label", 'the label has no "y"')
    return {
        "id": _check_id(obj["id"]),
        "y": check_label(obj["y"]),
        "ts": parse_timestamp(obj.get("ts")),
    }


def decode_label(raw: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode JSON bytes and validate them as a late label; raises :class:`InvalidRecord`."""
    return validate_label(_loads(raw, max_bytes))


class Unparsed:
    """A record a source could not even parse (a broken CSV row, undecodable bytes): the engine
    dead-letters it like any invalid event, so positions and counters stay aligned."""

    __slots__ = ("error", "original")

    def __init__(self, original: bytes | str, error: InvalidRecord) -> None:
        self.original = original
        self.error = error


def dead_letter(raw: bytes | str, error: InvalidRecord, source: str, position: Any = None) -> dict:
    """The dead-letter record: the original bytes (as text, lossless for UTF-8), reason and origin."""
    if isinstance(raw, bytes):
        try:
            original: str = raw.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            original = raw.hex()
            encoding = "hex"
    else:
        original, encoding = raw, "utf-8"
    return {
        "reason": error.reason,
        "detail": error.detail,
        "source": source,
        "position": position,
        "original": original,
        "encoding": encoding,
    }
