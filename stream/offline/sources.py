"""Where a backtest's (or a producer's) events come from: a built-in dataset, JSONL or CSV.

Every source yields items the engine accepts as they are: raw JSON bytes (JSONL, so a corrupt
line reaches the dead-letter output with its original bytes) or event dicts (datasets, CSV, flat
JSONL records).

Files are read the way people have them: a UTF-8 byte-order mark (Excel) is dropped, the CSV
delimiter is sniffed (``,`` ``;`` tab ``|``; a ``;`` file may write decimals with a comma),
``.gz`` / ``.bz2`` / ``.xz`` files are read through, a JSONL record without an ``"x"`` object
is a flat record whose fields are the features (with ``--target``), times without a zone are
read in ``--timezone`` (UTC), and class labels written ``0.0`` / ``1.0`` are read as integers.

This module names the source and checks it before the run; the reading is done by
:mod:`driftline.offline.file_reading` (names, compression, delimiters), :mod:`driftline.offline.column_roles` (values,
times, labels, warnings), :mod:`driftline.offline.csv_events` and :mod:`driftline.offline.jsonl_events`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.offline.column_roles import Notify, stderr_note, time_zone
from driftline.offline.csv_events import csv_events, csv_ids, csv_layout
from driftline.offline.file_reading import count_lines, file_kind, read_or_fail
from driftline.offline.jsonl_events import jsonl_events, jsonl_ids


class HeldNotes:
    """Notes held while a source opens: said only when it opens (a refused file gets its one
    line of error, not notes about a run that never starts); from then on, said at once."""

    def __init__(self, notify: Notify) -> None:
        self.notify = notify
        self.held: list[str] | None = []

    def __call__(self, message: str) -> None:
        if self.held is None:
            self.notify(message)
        else:
            self.held.append(message)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for message in held:
            self.notify(message)


@dataclass
class Source:
    """An event iterator with what is known about it up front."""

    name: str
    items: Iterator[Any]
    total: int | None = None
    true_drifts: list[int] = field(default_factory=list)
    #: Events over which each true drift is spread (0: abrupt); widens the detection window.
    drift_width: int = 0


def _check_unique(name: str, ids: Iterable[tuple[int, Any]], what: str) -> None:
    """Late labels are joined by id: a repeated id would join a label to the wrong event."""
    seen: dict[Any, int] = {}
    for position, value in ids:
        if value is None or value == "":
            continue  # no id: the engine dead-letters the event
        earlier = seen.setdefault(value, position)
        if earlier != position:
            raise ValueError(
                f"{what} is not unique in {name}: {value!r} on rows {earlier} and {position}; "
                "with --label-delay late labels are joined by id, so each id must be unique"
            )


def open_source(
    *,
    dataset: str | None = None,
    file: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    delimiter: str | None = None,
    timezone: str | None = None,
    task: str | None = None,
    unique_ids: bool = False,
    limit: int | None = None,
    seed: int = 42,
    notify: Notify = stderr_note,
) -> Source:
    """The source a CLI invocation names; ``limit`` caps the number of events.

    Every mistake that can be seen before the run (a missing column, a flat JSONL file without
    ``target``, a time column with no time, with ``unique_ids`` a repeated id) is a
    ``ValueError`` now. ``task`` is ``engine.task`` ("regression" keeps ``1.0`` labels numbers).
    """
    from itertools import islice

    if (dataset is None) == (file is None):
        raise ValueError("name exactly one source: --dataset NAME or --file PATH")
    if dataset is not None:
        from driftline.offline.datasets import get_dataset

        ds = get_dataset(dataset)
        total = ds.size if limit is None else min(limit, ds.size)
        drifts = [d for d in ds.true_drifts if d < total]
        return Source(dataset, ds.events(limit=total, seed=seed), total, drifts, ds.drift_width)
    assert file is not None
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"--file {file}: no such file")
    kind, _ = file_kind(path)
    time_zone(timezone)  # a wrong name fails even when no time needs it
    notes = HeldNotes(notify)
    options: dict[str, Any] = {
        "target": target,
        "id_column": id_column,
        "time_column": time_column,
        "key_column": key_column,
        "timezone": timezone,
        "task": task,
        "notify": notes,
    }
    items: Iterator[Any]
    if kind == "csv":
        if target is None:
            raise ValueError("a CSV file needs --target COLUMN (the label column)")
        layout = read_or_fail(path, lambda: csv_layout(path, delimiter))
        items = read_or_fail(path, lambda: csv_events(path, delimiter=layout.delimiter, **options))
        total = max(0, read_or_fail(path, lambda: count_lines(path)) - layout.skip)
        if unique_ids and id_column is not None:
            what = f"--id-column {id_column!r}"
            read_or_fail(
                path, lambda: _check_unique(path.name, csv_ids(path, layout, id_column), what)
            )
    elif kind == "jsonl":
        items = read_or_fail(path, lambda: jsonl_events(path, **options))
        total = read_or_fail(path, lambda: count_lines(path))
        if unique_ids:
            what = f"--id-column {id_column!r}" if id_column else "the event id"
            read_or_fail(path, lambda: _check_unique(path.name, jsonl_ids(path, id_column), what))
    else:
        raise ValueError(
            f"--file {file}: expected .jsonl (event contract, or flat records with --target) or "
            ".csv with --target, optionally compressed (.gz, .bz2, .xz)"
        )
    notes.release()
    if limit is not None:
        items = islice(items, limit)
        total = min(total, limit)
    return Source(path.name, items, total)
