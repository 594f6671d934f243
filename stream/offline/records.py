"""Events from records already in memory: a list of dicts or a pandas DataFrame (the notebook API).

Flat records (one key per column) become events the way a flat JSONL file or a CSV does
(:class:`~driftline.offline.column_roles.Roles`: whole-number labels are classes, times read in a
zone); records already in the event contract (``{"id", "x", "y"}``) pass unchanged. Missing
values (``None``, NaN) leave the feature out of ``x``, as River expects a missing feature.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any

from driftline.offline.column_roles import Notify, Roles, first_rows, stderr_note
from driftline.offline.sources import Source


def _plain(value: Any) -> Any:
    """A Python scalar for a NumPy one (``np.int64`` is no ``int``), ``None`` for NaN / NaT."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("Timestamp", "NaTType"):  # pandas times: ISO text, or missing
        return None if str(value) == "NaT" else value.isoformat()
    return value


def _rows(data: Any) -> tuple[Iterable[dict[str, Any]], int | None, str]:
    """The records of ``data`` with their count when known, and a name for the summary."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        columns = [str(c) for c in data.columns]
        rows = (dict(zip(columns, row, strict=True)) for row in data.itertuples(index=False))
        return rows, len(data), f"DataFrame ({len(data):,} rows)"
    if isinstance(data, dict | str | bytes):
        raise TypeError("expected records (a list of dicts) or a pandas DataFrame")
    total = len(data) if hasattr(data, "__len__") else None
    return iter(data), total, "records"


def _is_contract(row: Any, target: str | None) -> bool:
    """A record in the event contract (the engine judges it as it is): its ``x`` is a mapping, or,
    with no ``target`` named, it has the contract's ``id`` and ``x``."""
    if not isinstance(row, dict) or "x" not in row:
        return False
    return isinstance(row["x"], dict) or (target is None and "id" in row)


def record_events(
    rows: Iterable[dict[str, Any]],
    *,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    timezone: str | None = None,
    task: str | None = None,
    notify: Notify = stderr_note,
    name: str = "records",
    first_id: int = 0,
) -> Iterator[dict[str, Any]]:
    """Events from ``rows``; flat rows need ``target`` unless they carry no label at all. Without
    ``id_column`` an event's id is its row number, counted from ``first_id``.

    >>> rows = [{"t": 20.5, "rain": 1.0, "city": "Oslo"}, {"t": 3.0, "rain": None}]
    >>> list(record_events(rows, target="rain"))
    [{'id': 0, 'x': {'t': 20.5, 'city': 'Oslo'}, 'y': 1}, {'id': 1, 'x': {'t': 3.0}}]
    >>> list(record_events(rows, target="rian"))
    Traceback (most recent call last):
    ...
    ValueError: target 'rian' is not a column of records (columns: t, rain, city)
    """
    roles = Roles(
        target=target,
        id_column=id_column,
        time_column=time_column,
        key_column=key_column,
        task=task,
        timezone=timezone,
        notify=notify,
    )
    special = {target, id_column, time_column, key_column}
    iterator = iter(rows)
    head = first_rows(iterator)
    flat = [{k: _plain(v) for k, v in row.items()} for row in head if not _is_contract(row, target)]
    columns = list(dict.fromkeys(k for row in flat for k in row))
    for role, column in roles.named.items():
        if flat and column is not None and column not in columns:
            # As a file's missing --target: one plain error now, not a run that learns nothing.
            raise ValueError(
                f"{role} {column!r} is not a column of {name} (columns: {', '.join(map(str, columns[:20]))})"
            )
    features = [k for k in columns if k not in special]
    roles.check_sample(name, flat, features)
    for position, row in enumerate(_chain(head, iterator)):
        if _is_contract(row, target):
            yield row
            continue
        values = {k: _plain(v) for k, v in row.items()}
        event: dict[str, Any] = {
            "id": values.get(id_column) if id_column else first_id + position,
            "x": {k: v for k, v in values.items() if k not in special and v is not None},
        }
        if target is not None and (label := values.get(target)) is not None:
            event["y"] = roles.label(label)
        if time_column and (ts := values.get(time_column)) is not None:
            event["ts"] = roles.times(ts)
        if key_column and (key := values.get(key_column)) is not None:
            event["key"] = key
        yield event


def _chain(head: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from head
    yield from rest


def records_source(data: Any, *, limit: int | None = None, **roles: Any) -> Source:
    """A :class:`~driftline.offline.sources.Source` over a DataFrame or an iterable of dicts;
    ``limit`` caps the number of events (as ``open_source``'s)."""
    rows, total, name = _rows(data)
    events: Iterator[dict[str, Any]] = record_events(rows, name=name, **roles)
    if limit is not None:
        events = itertools.islice(events, limit)
        total = limit if total is None else min(limit, total)
    return Source(name, events, total)
