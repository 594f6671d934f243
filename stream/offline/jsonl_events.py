"""A JSONL file's events: lines in the event contract go as they are (raw bytes, so a corrupt
line reaches the dead-letter output with its original bytes); a flat record (no ``"x"``
object) becomes an event whose fields are the features, with ``--target``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from driftline.offline.column_roles import Notify, Roles, first_rows, stderr_note
from driftline.offline.file_reading import BOM, open_binary


def jsonl_lines(path: str | Path) -> Iterator[bytes]:
    """Non-blank lines of a JSONL file, as raw bytes (a leading byte-order mark dropped)."""
    with open_binary(path) as handle:
        first = True
        for line in handle:
            line = line.strip()
            if first and line.startswith(BOM):
                line = line[len(BOM) :].strip()
            if line:
                first = False
                yield line


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _is_flat(obj: Any) -> bool:
    return isinstance(obj, dict) and "x" not in obj


def jsonl_events(
    path: str | Path,
    *,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    timezone: str | None = None,
    task: str | None = None,
    notify: Notify = stderr_note,
) -> Iterator[bytes | dict[str, Any]]:
    """A JSONL file's events: lines in the event contract go as they are (raw bytes); with
    ``target``, a flat record (no ``"x"`` object) becomes an event whose features are its
    fields but ``id``, ``key``, ``ts``, the target and the columns named.

    Without ``target``, a first record with no ``"x"`` fails now: every line would be
    dead-lettered ``missing_x``.
    """
    name = Path(path).name
    first_line = next(jsonl_lines(path), b"")
    first = _loads(first_line)
    if first_line in (b"[", b"{") or isinstance(first, list):
        raise ValueError(
            f"--file {name}: one JSON document over many lines (or an array), not JSON lines: "
            "write one object per line (e.g. jq -c '.[]')"
        )
    if not _is_flat(first):
        return jsonl_lines(path)
    assert isinstance(first, dict)
    fields = ", ".join(map(str, first))
    if target is None:
        raise ValueError(
            f'--file {name}: no "x" object: for flat records pass --target COLUMN '
            f"(fields of the first record: {fields})"
        )
    roles = Roles(target, id_column, time_column, key_column, task, timezone, notify)
    for role, column in roles.named.items():
        if column is not None and column not in first:
            flag = "--" + role.replace("_", "-")
            raise ValueError(
                f"{flag} {column!r} is not a field of the first record of {name}; fields: {fields}"
            )
    special = {"id", "key", "ts", target, id_column, time_column, key_column}
    sample = [obj for obj in map(_loads, first_rows(jsonl_lines(path))) if _is_flat(obj)]
    features = list(dict.fromkeys(k for obj in sample for k in obj if k not in special))
    roles.check_sample(name, sample, features)
    return _flat_event_stream(path, roles, special)


def _flat_event_stream(
    path: str | Path, roles: Roles, special: set[str | None]
) -> Iterator[bytes | dict[str, Any]]:
    id_field, time_field = roles.id_column or "id", roles.time_column or "ts"
    key_field, target = roles.key_column or "key", roles.target
    for position, line in enumerate(jsonl_lines(path)):
        obj = _loads(line)
        if not _is_flat(obj):
            yield line  # the contract, or not an object: the engine judges the original line
            continue
        event: dict[str, Any] = {
            "id": obj.get(id_field, position),
            "x": {k: v for k, v in obj.items() if k not in special},
            "y": roles.label(obj.get(target)),
        }
        if (ts := obj.get(time_field)) is not None:
            event["ts"] = roles.times(ts)
        if (key := obj.get(key_field)) is not None:
            event["key"] = key
        yield event


def jsonl_ids(path: str | Path, id_column: str | None) -> Iterator[tuple[int, Any]]:
    """``(line number, id)`` of each object: what a check for repeated ids goes through (an
    id that is neither text nor an integer counts as none)."""
    for position, line in enumerate(jsonl_lines(path)):
        obj = _loads(line)
        if isinstance(obj, dict):
            field_name = id_column if id_column and _is_flat(obj) else "id"
            value = obj.get(field_name)
            yield position, value if isinstance(value, str | int) else None
