"""Which column (CSV) or field (flat JSONL) plays which part of an event, and how its values are
read: cells become numbers, booleans or text, times without a zone are read in ``--timezone``,
whole-number labels are classes, and the first rows are checked for a mistake worth saying.

Shared by :mod:`driftline.offline.csv_events` and :mod:`driftline.offline.jsonl_events`, so both file kinds read
values and warn the same way.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from driftline.learners.events import MAX_TS_MS

#: Rows looked at when the source opens: label type, time column, columns that look like a
#: time (the first 100 of them) or an id.
SAMPLE_ROWS = 1000
TIME_SAMPLE = 100
#: A text column with a new value on more than this share of rows is an id, not a feature.
ID_SHARE = 0.9
#: ... judged on at least this many values.
ID_MIN_VALUES = 50
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")

Notify = Callable[[str], None]


def stderr_note(message: str) -> None:
    """How a source says something worth knowing (once): one line on stderr."""
    print(f"driftline: {message}", file=sys.stderr)


def first_rows(rows: Iterator[Any]) -> list[Any]:
    """The rows the checks at open look at: the first :data:`SAMPLE_ROWS`."""
    return [row for _, row in zip(range(SAMPLE_ROWS), rows, strict=False)]


def number_or_text(text: str, decimal_comma: bool = False) -> Any:
    """CSV cell to a JSON-like value: empty or NaN is missing, numbers parse, the rest is text.

    >>> number_or_text("1.0"), number_or_text("NaN"), number_or_text("2,5", decimal_comma=True)
    (1.0, None, 2.5)
    """
    if not text or text.lower() in ("nan", "null", "na"):
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    if decimal_comma and _DECIMAL_COMMA.fullmatch(text):
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return text


def time_zone(name: str | None) -> tzinfo:
    """``--timezone``: UTC when not given; a name that is not a zone is a ``ValueError``."""
    if name is None or name.upper() in ("UTC", "Z"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"--timezone {name!r} is not a time zone name (like UTC or Europe/Berlin)"
        ) from None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


#: Numbers in this range are epoch seconds (1973-03-03 to 5138), not milliseconds (1970-1973).
EPOCH_SECONDS = (1e8, 1e11)


class EventTimes:
    """Event times as the contract takes them: a time without a zone is read in ``timezone``
    (UTC when not given, said once through ``notify``) and becomes epoch milliseconds, as do
    epoch seconds (said once too); anything else passes unchanged (the engine rejects what is
    not a time as ``bad_ts``).

    >>> notes = []
    >>> times = EventTimes(None, notes.append)
    >>> times(1714564800), times(1714564800123), times("2024-05-01 12:00:00")
    (1714564800000, 1714564800123, 1714564800000)
    >>> notes
    ['note: times such as 1714564800 read as epoch seconds', 'note: times without a zone read as UTC; --timezone to change']
    """

    def __init__(self, timezone: str | None, notify: Notify) -> None:
        self.zone = time_zone(timezone)
        self.explicit = timezone is not None
        self.notify = notify
        self.noted = False
        self.seconds_noted = False

    def __call__(self, value: Any) -> Any:
        kind = type(value)
        if (kind is int or kind is float) and EPOCH_SECONDS[0] <= value < EPOCH_SECONDS[1]:
            # As epoch milliseconds these would all fall in 1970-1973: they are epoch seconds
            # (what `date +%s` and most databases write).
            if not self.seconds_noted:
                self.seconds_noted = True
                self.notify(f"note: times such as {value} read as epoch seconds")
            return int(value * 1000)
        if not isinstance(value, str) or (parsed := _iso(value)) is None:
            return value
        if parsed.tzinfo is not None:
            return value
        if not self.explicit and not self.noted:
            self.noted = True
            self.notify("note: times without a zone read as UTC; --timezone to change")
        try:
            return int(parsed.replace(tzinfo=self.zone).timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            return value

    @staticmethod
    def is_time(value: Any) -> bool:
        if isinstance(value, str):
            return _iso(value) is not None
        return type(value) in (int, float) and 0 <= value <= MAX_TS_MS


def _whole_number_labels(values: list[Any]) -> bool:
    """Every value a number with no fractional part, and at least one written as a float."""
    if not values or not any(type(v) is float for v in values):
        return False
    return all(type(v) is int or (type(v) is float and v.is_integer()) for v in values)


def _as_class(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


@dataclass
class Roles:
    """Which column (field) plays which part, and how its values are read."""

    target: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    key_column: str | None = None
    #: "regression" keeps whole-number float labels as they are (``engine.task``).
    task: str | None = None
    timezone: str | None = None
    notify: Notify = stderr_note
    times: EventTimes = field(init=False)
    label_ints: bool = False

    def __post_init__(self) -> None:
        self.times = EventTimes(self.timezone, self.notify)

    @property
    def named(self) -> dict[str, str | None]:
        return {
            "target": self.target,
            "id_column": self.id_column,
            "time_column": self.time_column,
            "key_column": self.key_column,
        }

    def check_sample(self, name: str, rows: list[dict[str, Any]], features: Iterable[str]) -> None:
        """What the first rows tell, said now: whole-number labels are classes, a time column
        that holds no time fails, and a feature that looks like a time or an id is pointed at."""
        if self.target is not None and self.task != "regression":
            labels = [r[self.target] for r in rows if r.get(self.target) is not None]
            if _whole_number_labels(labels):
                self.label_ints = True
                example = next(v for v in labels if type(v) is float)
                self.notify(
                    f"note: {self.target!r} holds whole numbers written like {example!r}: read "
                    'as class labels; engine.task = "regression" to predict a number'
                )
        if self.time_column is not None:
            times = [r[self.time_column] for r in rows if r.get(self.time_column) is not None]
            times = times[:TIME_SAMPLE]
            if times and not any(EventTimes.is_time(t) for t in times):
                raise ValueError(
                    f"--time-column {self.time_column!r} of {name} holds no time: {times[0]!r} "
                    "is neither epoch milliseconds nor ISO-8601 (like 2024-05-01 12:00:00)"
                )
            for value in times:
                self.times(value)  # the note on times without a zone, now rather than mid-run
        for column in features:
            values = [r[column] for r in rows if r.get(column) is not None]
            self._hint(column, values)

    def _hint(self, column: str, values: list[Any]) -> None:
        first = values[:TIME_SAMPLE]
        if self.time_column is None and len(first) >= 3:
            times = sum(1 for v in first if isinstance(v, str) and _iso(v) is not None)
            if times >= 0.8 * len(first):
                self.notify(
                    f"warning: column {column!r} looks like a time ({first[0]!r}) and is read "
                    f"as a feature: pass --time-column {column} if it is the event time"
                )
                return
        if len(values) < ID_MIN_VALUES:
            return
        flags = [
            f"--{role}-column {column}"
            for role, known in (("id", self.id_column), ("time", self.time_column))
            if known is None
        ]
        if (
            flags
            and all(type(v) is int for v in values)
            and all(a < b for a, b in itertools.pairwise(values))
        ):
            self.notify(
                f"warning: column {column!r} rises on every row (first {len(values):,}), like an "
                f"id or a time, and is read as a feature: pass {' or '.join(flags)}"
            )
            return
        if self.id_column is not None:
            return
        texts = [v for v in values if isinstance(v, str)]
        share = len(set(texts)) / len(values) if len(texts) == len(values) else 0.0
        if share > ID_SHARE:
            self.notify(
                f"warning: column {column!r} has a new value on {share:.0%} of the first "
                f"{len(values):,} rows, like an id, and is read as a feature: pass "
                f"--id-column {column} if it is the event id"
            )

    def label(self, value: Any) -> Any:
        return _as_class(value) if self.label_ints else value
