"""A CSV file's rows as events: its header and delimiter read first, the columns named and the
first rows checked, then each row an event (or :class:`Unparsed` for a row that cannot be read).

A UTF-8 byte-order mark (Excel) is dropped, Excel's ``sep=;`` line is followed, the delimiter is
sniffed (``,`` ``;`` tab ``|``; a ``;`` file may write decimals with a comma) and class labels
written ``0.0`` / ``1.0`` are read as integers.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "s.csv"
>>> _ = path.write_text("when,temp,site,label\\n2024-01-01T00:00:00Z,20.5,a,1\\n")
>>> list(csv_events(path, target="label", time_column="when"))
[{'id': 0, 'x': {'temp': 20.5, 'site': 'a'}, 'y': 1, 'ts': '2024-01-01T00:00:00Z'}]
>>> _ = path.write_text("\\ufeffid;temp;label\\nr1;20,5;1.0\\n", encoding="utf-8")
>>> list(csv_events(path, target="label", id_column="id", notify=lambda note: None))
[{'id': 'r1', 'x': {'temp': 20.5}, 'y': 1}]
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline.learners.events import InvalidRecord, Unparsed
from driftline.offline.column_roles import Notify, Roles, first_rows, number_or_text, stderr_note
from driftline.offline.file_reading import BOM, SNIFF_LINES, open_binary, sniff_delimiter

_EXCEL_SEP = re.compile(rb"sep=(.)")


@dataclass
class CsvLayout:
    """A CSV file's header and delimiter."""

    columns: list[str]
    delimiter: str
    #: Lines before the first row: the header, and Excel's ``sep=;`` line when there is one.
    skip: int = 1

    @property
    def decimal_comma(self) -> bool:
        # A semicolon file is how a spreadsheet writes CSV where the comma is the decimal mark.
        return self.delimiter == ";"


def csv_layout(path: str | Path, delimiter: str | None = None) -> CsvLayout:
    """The header (its byte-order mark dropped) and the delimiter (sniffed unless given)."""
    with open_binary(path) as handle:
        head = [line for _, line in zip(range(SNIFF_LINES), handle, strict=False)]
    if head and head[0].startswith(BOM):
        head[0] = head[0][len(BOM) :]
    skip = 1
    if head and (sep := _EXCEL_SEP.fullmatch(head[0].rstrip(b"\r\n"))):
        # Excel's hint line: it names the delimiter, the header follows.
        delimiter = delimiter or sep.group(1).decode()
        head, skip = head[1:], 2
    if not head or not head[0].strip():
        raise ValueError(f"--file {path}: no header line (a CSV file starts with its columns)")
    _check_encoding(path, head, skip)
    lines = [line.decode("utf-8", errors="replace") for line in head if line.strip()]
    if delimiter is None:
        delimiter = "\t" if Path(path).name.lower().endswith((".tsv", ".tsv.gz")) else None
        delimiter = delimiter or sniff_delimiter(lines)
    columns = next(csv.reader([lines[0].rstrip("\r\n")], delimiter=delimiter), [])
    return CsvLayout([c.strip() for c in columns], delimiter, skip)


def _check_encoding(path: str | Path, head: list[bytes], skip: int) -> None:
    """Excel's "CSV" (not "CSV UTF-8") on Windows writes cp1252: say so once, rather than as a
    ``bad_csv_row`` on every line with an accent. A header that is not UTF-8, or several such
    lines among the first ones, is an encoding; one stray line is a broken row (dead-lettered)."""
    bad = []
    for number, line in enumerate(head, start=skip):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
    header_bad = bool(bad) and bad[0] == skip
    if header_bad or (len(bad) >= 2 and len(bad) * 10 >= len(head)):
        raise ValueError(
            f"--file {path}: line {bad[0]} is not UTF-8 (a spreadsheet's cp1252 export?): "
            f"save as 'CSV UTF-8', or convert: iconv -f cp1252 -t utf-8 {path} > utf8.csv"
        )


def csv_header(path: str | Path, *, delimiter: str | None = None, **roles: str | None) -> list[str]:
    """The columns of a CSV file; a named role (``target="y"``) that is not one fails now,
    before any row is read."""
    layout = csv_layout(path, delimiter)
    _check_columns(path, layout, roles)
    return layout.columns


def _check_columns(path: str | Path, layout: CsvLayout, roles: dict[str, str | None]) -> None:
    for role, name in roles.items():
        if name is not None and name not in layout.columns:
            flag = "--" + role.replace("_", "-")
            hint = ""
            if len(layout.columns) == 1:
                hint = "; is another --delimiter needed?"
            raise ValueError(
                f"{flag} {name!r} is not a column of {path}; columns: "
                f"{', '.join(layout.columns)}{hint}"
            )


@dataclass
class CsvRow:
    number: int
    line: bytes
    cells: dict[str, str]
    #: The cells as JSON-like values (numbers, booleans, text, None for missing).
    values: dict[str, Any]


def _csv_rows(path: str | Path, layout: CsvLayout) -> Iterator[CsvRow | Unparsed]:
    """Each non-blank row, or :class:`Unparsed` for one that is not UTF-8 or has the wrong
    number of fields (``row`` counts lines after the header, from 0)."""
    columns, delimiter, comma = layout.columns, layout.delimiter, layout.decimal_comma
    with open_binary(path) as handle:
        for _ in range(layout.skip):
            next(handle, None)  # the header
        for row_number, raw in enumerate(handle):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                cells = next(csv.reader([line.decode("utf-8")], delimiter=delimiter))
            except (UnicodeDecodeError, csv.Error) as exc:
                yield Unparsed(line, InvalidRecord("bad_csv_row", f"row {row_number}: {exc}"))
                continue
            if len(cells) != len(columns):
                detail = f"row {row_number} has {len(cells)} fields, the header {len(columns)}"
                yield Unparsed(line, InvalidRecord("bad_csv_row", detail))
                continue
            text = dict(zip(columns, cells, strict=True))
            values = {k: number_or_text(v, comma) for k, v in text.items()}
            yield CsvRow(row_number, line, text, values)


def _key_value(text: str) -> Any:
    value = number_or_text(text)
    return value if value is None or type(value) in (int, str) else text


def csv_events(
    path: str | Path,
    *,
    target: str | None,
    id_column: str | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    delimiter: str | None = None,
    timezone: str | None = None,
    task: str | None = None,
    notify: Notify = stderr_note,
) -> Iterator[dict[str, Any] | Unparsed]:
    """Rows of a CSV file as events; ``target`` is the label column (absent: no labels).

    The header, the columns named and the first rows are checked now (a mistake fails before
    any row is used); the rows come as they are read. One physical line per row. A line that is
    not UTF-8 or has the wrong number of fields is yielded as :class:`Unparsed`, so it reaches
    the dead-letter output and the run goes on.
    """
    layout = csv_layout(path, delimiter)
    roles = Roles(target, id_column, time_column, key_column, task, timezone, notify)
    _check_columns(path, layout, roles.named)
    sample = [r.values for r in first_rows(_csv_rows(path, layout)) if isinstance(r, CsvRow)]
    special = {target, id_column, time_column, key_column}
    features = [c for c in layout.columns if c not in special]
    roles.check_sample(Path(path).name, sample, features)
    return _csv_event_stream(path, layout, roles, special)


def _csv_event_stream(
    path: str | Path, layout: CsvLayout, roles: Roles, special: set[str | None]
) -> Iterator[dict[str, Any] | Unparsed]:
    target, id_column, time_column, key_column = (
        roles.target,
        roles.id_column,
        roles.time_column,
        roles.key_column,
    )
    for row in _csv_rows(path, layout):
        if isinstance(row, Unparsed):
            yield row
            continue
        values = row.values
        event: dict[str, Any] = {
            "id": row.cells[id_column] if id_column else row.number,
            "x": {k: v for k, v in values.items() if k not in special},
            "y": roles.label(values[target]) if target else None,
        }
        if time_column and (ts := values[time_column]) is not None:
            event["ts"] = roles.times(ts)
        if key_column and (key := _key_value(row.cells[key_column])) is not None:
            event["key"] = key
        yield event


def csv_ids(path: str | Path, layout: CsvLayout, id_column: str) -> Iterator[tuple[int, Any]]:
    """``(row number, id)`` of each readable row: what a check for repeated ids goes through."""
    for row in _csv_rows(path, layout):
        if isinstance(row, CsvRow):
            yield row.number, row.cells[id_column]
