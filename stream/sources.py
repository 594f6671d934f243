"""Where a backtest's (or a producer's) events come from: a built-in dataset, JSONL or CSV.

Every source yields items the engine accepts as they are: raw JSON bytes (JSONL, so a corrupt
line reaches the dead-letter output with its original bytes) or event dicts (datasets, CSV).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "s.csv"
>>> _ = path.write_text("when,temp,site,label\\n2024-01-01T00:00:00Z,20.5,a,1\\n")
>>> list(csv_events(path, target="label", time_column="when"))
[{'id': 0, 'x': {'temp': 20.5, 'site': 'a'}, 'y': 1, 'ts': '2024-01-01T00:00:00Z'}]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learners.events import InvalidRecord, Unparsed


@dataclass
class Source:
    """An event iterator with what is known about it up front."""

    name: str
    items: Iterator[Any]
    total: int | None = None
    true_drifts: list[int] = field(default_factory=list)
    #: Events over which each true drift is spread (0: abrupt); widens the detection window.
    drift_width: int = 0


def _number_or_text(text: str) -> Any:
    """CSV cell to a JSON-like value: empty or NaN is missing, numbers parse, the rest is text."""
    if not text or text.lower() in ("nan", "null", "na"):
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def csv_header(path: str | Path, **roles: str | None) -> list[str]:
    """The columns of a CSV file; a named role (``target="y"``) that is not one fails now,
    before any row is read."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        columns = next(csv.reader(handle), [])
    for role, name in roles.items():
        if name is not None and name not in columns:
            flag = "--" + role.replace("_", "-")
            raise ValueError(
                f"{flag} {name!r} is not a column of {path}; columns: {', '.join(columns)}"
            )
    return columns


def csv_events(
    path: str | Path,
    *,
    target: str | None,
    id_column: str | None = None,
    time_column: str | None = None,
) -> Iterator[dict[str, Any] | Unparsed]:
    """Rows of a CSV file as events; ``target`` is the label column (absent: no labels).

    One physical line per row. A line that is not UTF-8 or has the wrong number of fields is
    yielded as :class:`Unparsed`, so it reaches the dead-letter output and the run goes on.
    """
    columns = csv_header(path, target=target, id_column=id_column, time_column=time_column)
    special = {target, id_column, time_column}
    with open(path, "rb") as handle:
        next(handle, None)  # the header
        for row_number, raw in enumerate(handle):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                cells = next(csv.reader([line.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error) as exc:
                yield Unparsed(line, InvalidRecord("bad_csv_row", f"row {row_number}: {exc}"))
                continue
            if len(cells) != len(columns):
                detail = f"row {row_number} has {len(cells)} fields, the header {len(columns)}"
                yield Unparsed(line, InvalidRecord("bad_csv_row", detail))
                continue
            row = dict(zip(columns, cells, strict=True))
            event: dict[str, Any] = {
                "id": row[id_column] if id_column else row_number,
                "x": {k: _number_or_text(v) for k, v in row.items() if k not in special},
                "y": _number_or_text(row[target]) if target else None,
            }
            if time_column and (ts := _number_or_text(row[time_column])) is not None:
                event["ts"] = ts
            yield event


def jsonl_lines(path: str | Path) -> Iterator[bytes]:
    """Non-blank lines of a JSONL file, as raw bytes."""
    with open(path, "rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def count_lines(path: str | Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset | --file`` with the CSV options, ``--limit`` and ``--seed``: one definition for
    every command that reads events (``open_source`` takes the same names)."""
    from stream.cli import positive_int

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--dataset", metavar="NAME", help="a built-in stream (see `driftline datasets`)"
    )
    src.add_argument(
        "--file", metavar="PATH", help="JSONL in the event contract, or CSV (--target)"
    )
    parser.add_argument("--target", metavar="COLUMN", help="CSV: the label column")
    parser.add_argument(
        "--id-column", metavar="COLUMN", help="CSV: the event id column (default: row number)"
    )
    parser.add_argument(
        "--time-column", metavar="COLUMN", help="CSV: event time (epoch ms or ISO-8601)"
    )
    parser.add_argument("--limit", type=positive_int, metavar="N", help="stop after N events")
    parser.add_argument("--seed", type=int, default=42, help="seed of a built-in dataset (42)")


def open_source(
    *,
    dataset: str | None = None,
    file: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    limit: int | None = None,
    seed: int = 42,
) -> Source:
    """The source a CLI invocation names; ``limit`` caps the number of events."""
    from itertools import islice

    if (dataset is None) == (file is None):
        raise ValueError("name exactly one source: --dataset NAME or --file PATH")
    if dataset is not None:
        from stream.datasets import get_dataset

        ds = get_dataset(dataset)
        total = ds.size if limit is None else min(limit, ds.size)
        drifts = [d for d in ds.true_drifts if d < total]
        return Source(dataset, ds.events(limit=total, seed=seed), total, drifts, ds.drift_width)
    assert file is not None
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"--file {file}: no such file")
    suffix = path.suffix.lower()
    items: Iterator[Any]
    if suffix == ".csv":
        if target is None:
            raise ValueError("a CSV file needs --target COLUMN (the label column)")
        csv_header(path, target=target, id_column=id_column, time_column=time_column)
        items = csv_events(path, target=target, id_column=id_column, time_column=time_column)
        total = max(0, count_lines(path) - 1)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        items = jsonl_lines(path)
        total = count_lines(path)
    else:
        raise ValueError(f"--file {file}: expected .jsonl (event contract) or .csv with --target")
    if limit is not None:
        items = islice(items, limit)
        total = min(total, limit)
    return Source(path.name, items, total)
