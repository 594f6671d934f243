"""The event contract: decode and validate input events and late labels.

An event is a JSON object::

    {"id": "e-1", "key": "sensor-7", "ts": 1700000000000, "x": {"temp": 21.5}, "y": 1}

* ``id``: string or integer, required.
* ``key``: optional string or integer (per-key models, Kafka message key).
* ``ts``: optional, epoch milliseconds or an ISO-8601 string with a time zone; normalised to epoch
  milliseconds, from 1970-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z: a fixed
  range, the same for every run (a year-1 date or epoch microseconds are ``bad_ts``).
* ``x``: object of feature name to number, string, boolean or null (null means "missing").
* ``y``: optional label: number, string or boolean.

A late label is ``{"id": ..., "y": ...}``.

Anything else is rejected with :class:`InvalidRecord`, whose ``reason`` is a short machine-readable
code (used as a metric label and in the dead-letter record) and whose ``detail`` says precisely what
was wrong. A Kafka record with no value at all (a tombstone, :data:`TOMBSTONE`) is ``tombstone``,
not ``not_json``.

>>> decode_event(b'{"id": 7, "x": {"a": 1.5, "b": null}, "y": true}')
{'id': 7, 'key': None, 'ts': None, 'x': {'a': 1.5}, 'y': True}
>>> decode_event(b'{"x": {}}')
Traceback (most recent call last):
...
driftline.learners.events.InvalidRecord: missing_id: the event has no "id"
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

import orjson

#: Records larger than this are rejected before decoding (Kafka's default message limit is 1 MB).
DEFAULT_MAX_BYTES = 1_000_000
#: Larger feature magnitudes are rejected: one finite 1e308 would overflow every running variance
#: (guard, scalers, monitors) for good. ``engine.max_abs_value`` changes it.
DEFAULT_MAX_ABS = 1e15
#: The range of ``ts`` (epoch milliseconds, both ends included): 1970-01-01T00:00:00.000Z to
#: 2199-12-31T23:59:59.999Z. Fixed, never relative to the wall clock, so that a replay or a backtest
#: rejects exactly what the live run rejected. Beyond it is not a time but a mistake: a year-1 date,
#: epoch microseconds or nanoseconds sent as milliseconds.
MIN_TS_MS = 0
MAX_TS_MS = 7_258_118_400_000 - 1
#: A dead letter carries the original record whole when its text (as it stands in the JSON dead
#: letter, escapes included) is at most this long; a longer one carries the first
#: :data:`DEAD_LETTER_PREFIX_BYTES` bytes, its size and its SHA-256 instead. A dead letter therefore
#: stays below ~100 KB whatever was rejected (Kafka's default max.message.bytes is 1 MB), and the
#: whole record is still where ``source``/``partition``/``position`` say.
DEAD_LETTER_ORIGINAL_MAX = 64 * 1024
DEAD_LETTER_PREFIX_BYTES = 4096
#: ``detail`` quotes the offending value: cut beyond this many characters.
DETAIL_MAX = 1000

Label = bool | int | float | str


class Tombstone(bytes):
    """The value of a Kafka record that has none (a tombstone, ``value=None``): empty bytes that
    decode to the ``tombstone`` reason rather than an empty ``not_json``."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Tombstone, ())


#: The one tombstone value (``Record.value`` of a consumed record whose value is None).
TOMBSTONE = Tombstone()


class InvalidRecord(ValueError):
    """A record that breaks the contract. ``reason`` is a stable code, ``detail`` a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _loads(raw: bytes | str, max_bytes: int) -> Any:
    if raw.__class__ is Tombstone:
        raise InvalidRecord("tombstone", "a Kafka record with no value (a tombstone), not an event")
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
            f"bad_{field}", f'"{field}" must be a string or an integer, got {_quote(value)}'
        )
    if isinstance(value, str) and not value:
        raise InvalidRecord(f"bad_{field}", f'"{field}" must not be empty')
    return value


def _out_of_range(value: Any, ms: float) -> InvalidRecord:
    hint = ""
    if ms >= 10**14 and not isinstance(value, str):  # beyond the year 5138
        hint = " (epoch microseconds or nanoseconds? ts is in milliseconds)"
    return InvalidRecord(
        "bad_ts",
        f'"ts" {_quote(value)} is outside 1970-01-01T00:00:00Z .. 2199-12-31T23:59:59.999Z{hint}',
    )


def parse_timestamp(value: Any) -> int | None:
    """Epoch milliseconds (int or float) or ISO-8601 text with a zone to epoch milliseconds, within
    :data:`MIN_TS_MS` .. :data:`MAX_TS_MS` (1970 to the end of 2199).

    >>> parse_timestamp("2024-01-01T00:00:00Z")
    1704067200000
    >>> parse_timestamp(1704067200000.0)
    1704067200000
    >>> parse_timestamp("0001-01-01T00:00:00Z")
    Traceback (most recent call last):
    ...
    driftline.learners.events.InvalidRecord: bad_ts: "ts" '0001-01-01T00:00:00Z' is outside 1970-01-01T00:00:00Z .. 2199-12-31T23:59:59.999Z
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRecord(
            "bad_ts", f'"ts" must be epoch milliseconds or ISO-8601, got {_quote(value)}'
        )
    if isinstance(value, int | float):
        # (Not for an int: isfinite overflows on one past any float, which is out of range.)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRecord("bad_ts", f'"ts" must be epoch milliseconds, got {value!r}')
        if not MIN_TS_MS <= value <= MAX_TS_MS:
            raise _out_of_range(value, value)
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecord("bad_ts", f'"ts" is not ISO-8601: {_quote(value)}') from None
        if parsed.tzinfo is None:
            raise InvalidRecord("bad_ts", f'"ts" needs a time zone (e.g. "Z"): {_quote(value)}')
        ms = parsed.timestamp() * 1000
        if not MIN_TS_MS <= ms < MAX_TS_MS + 1:
            raise _out_of_range(value, ms)
        return int(ms)
    raise InvalidRecord(
        "bad_ts", f'"ts" must be epoch milliseconds or ISO-8601, got {_quote(value)}'
    )


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
    raise InvalidRecord(
        "bad_label", f'"y" must be a number, string or boolean, got {_quote(value)}'
    )


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
                    raise InvalidRecord("non_finite", f"feature {_quote(name)} is {value!r}")
                raise InvalidRecord(
                    "out_of_range", f"feature {_quote(name)} is {value!r}, beyond ±{max_abs:g}"
                )
        elif kind is str or kind is bool:
            pass
        elif value is None:
            continue
        else:
            raise InvalidRecord(
                "bad_feature",
                f"feature {_quote(name)} must be a number, string, boolean or null, "
                f"got {kind.__name__}",
            )
        if type(name) is not str:
            # JSON names are text; a decoded dict may say 0 where JSON says "0". One spelling,
            # or per-record and micro-batch models (DataFrame columns) would differ.
            name = str(name)
        clean[name] = value
    return clean


def validate_event(
    obj: Any, max_abs: float = DEFAULT_MAX_ABS, features: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a decoded event and return it normalised (``id``, ``key``, ``ts``, ``x``, ``y``).

    ``features``: its ``x`` validated already, with the others of a micro-batch
    (:func:`driftline.learners.columns.plain_features`)."""
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
        "ts": ts if type(ts) is int and MIN_TS_MS <= ts <= MAX_TS_MS else parse_timestamp(ts),
        "x": validate_features(x, max_abs) if features is None else features,
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


class Decoded:
    """JSON bytes a driver decoded already (the live worker's label order reads each event's
    ``ts``): the engine validates ``value`` instead of decoding ``original`` again, and
    dead-letters ``original`` as it came. The same checks either way: the size limit applies to
    ``original``."""

    __slots__ = ("original", "value")

    def __init__(self, original: bytes, value: Any) -> None:
        self.original = original
        self.value = value


def decoded_value(decoded: Decoded, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """What ``decode_event`` would have decoded: ``decoded.value``, or ``oversized``."""
    if len(decoded.original) > max_bytes:
        raise InvalidRecord(
            "oversized", f"record is {len(decoded.original)} bytes, the limit is {max_bytes}"
        )
    return decoded.value


class Unparsed:
    """A record a source could not even parse (a broken CSV row, undecodable bytes): the engine
    dead-letters it like any invalid event, so positions and counters stay aligned."""

    __slots__ = ("error", "original")

    def __init__(self, original: bytes | str, error: InvalidRecord) -> None:
        self.original = original
        self.error = error


def _quote(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to about ``limit`` characters (a detail must stay small)."""
    try:
        text = repr(value)
    except ValueError:  # an int of more digits than Python will print (sys.int_info)
        return f"an integer of {value.bit_length():,} bits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _as_text(data: bytes) -> tuple[str, str]:
    """Bytes as dead-letter text: ``(text, "utf-8")`` when they are UTF-8, else ``(hex, "hex")``."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.hex(), "hex"


def _prefix_text(data: bytes) -> tuple[str, str]:
    """The first :data:`DEAD_LETTER_PREFIX_BYTES` bytes as text; a UTF-8 character cut in two at
    the end is left out (the prefix of a UTF-8 record stays UTF-8)."""
    head = data[:DEAD_LETTER_PREFIX_BYTES]
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(data) > len(head):
            try:
                return head[: exc.start].decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                pass
    return head.hex(), "hex"


def dead_letter(raw: bytes | str, error: InvalidRecord, source: str, position: Any = None) -> dict:
    """The dead-letter record: the original record, the reason and where it came from.

    ``original`` is the record as text (lossless: UTF-8 as it is, anything else in hex, see
    ``encoding``) when that text, JSON-escaped, is at most :data:`DEAD_LETTER_ORIGINAL_MAX`
    characters. A larger record is described instead of carried: ``original_prefix`` (its first
    :data:`DEAD_LETTER_PREFIX_BYTES` bytes, in ``encoding``), ``original_bytes`` (its size),
    ``original_sha256`` and ``truncated: true``. Either way the dead letter's size is bounded, so
    it always fits on the dead-letter topic.

    >>> big = dead_letter(bytes(range(256)) * 4096, InvalidRecord("oversized", "1 MB"), "events", 7)
    >>> big["truncated"], big["original_bytes"], big["encoding"], len(big["original_prefix"])
    (True, 1048576, 'hex', 8192)
    >>> "original" in big
    False
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no JSON can carry them as text
            data = raw.encode("utf-8", "surrogatepass")
            raw = data
    else:
        data = bytes(raw)
    detail = error.detail
    if len(detail) > DETAIL_MAX:
        detail = f"{detail[:DETAIL_MAX]}... ({len(detail)} characters)"
    record: dict[str, Any] = {
        "reason": error.reason,
        "detail": detail,
        "source": source,
        "position": position,
    }
    if len(data) <= DEAD_LETTER_ORIGINAL_MAX:
        original, encoding = (raw, "utf-8") if isinstance(raw, str) else _as_text(data)
        # Control characters take 6 characters each in JSON ("\u0001"): measure the text as the
        # dead letter will carry it. (Hex needs no escapes.)
        if len(original) <= DEAD_LETTER_ORIGINAL_MAX and (
            encoding == "hex" or len(orjson.dumps(original)) - 2 <= DEAD_LETTER_ORIGINAL_MAX
        ):
            record["original"] = original
            record["encoding"] = encoding
            return record
    prefix, encoding = _prefix_text(data)
    record["original_prefix"] = prefix
    record["encoding"] = encoding
    record["original_bytes"] = len(data)
    record["original_sha256"] = hashlib.sha256(data).hexdigest()
    record["truncated"] = True
    return record
