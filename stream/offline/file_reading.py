"""Files as people have them: what kind a file is by its name, its bytes read through
compression, its line count and its CSV delimiter.

Nothing here knows about events; :mod:`driftline.offline.csv_events` and :mod:`driftline.offline.jsonl_events` build
on it.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import io
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

#: Compressed files are read through, by their last suffix.
COMPRESSIONS = (".gz", ".bz2", ".xz")
CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
#: The delimiters a CSV file may use (sniffed from its first lines unless ``--delimiter``).
DELIMITERS = ",;\t|"
SNIFF_LINES = 20
#: The UTF-8 byte-order mark Excel writes at the start of a file.
BOM = b"\xef\xbb\xbf"

T = TypeVar("T")


def file_kind(path: str | Path) -> tuple[str | None, str | None]:
    """``("csv" | "jsonl" | None, compression suffix or None)`` from the file name.

    >>> file_kind("history.jsonl.gz"), file_kind("Data.CSV"), file_kind("x.parquet")
    (('jsonl', '.gz'), ('csv', None), (None, None))
    """
    name = Path(path).name.lower()
    compression = next((s for s in COMPRESSIONS if name.endswith(s)), None)
    if compression:
        name = name[: -len(compression)]
    if name.endswith(CSV_SUFFIXES):
        return "csv", compression
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl", compression
    return None, compression


def open_binary(path: str | Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed when its name ends in ``.gz``, ``.bz2`` or ``.xz``."""
    _, compression = file_kind(path)
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".bz2":
        return bz2.open(path, "rb")
    if compression == ".xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def count_lines(path: str | Path) -> int:
    """Non-blank lines (through compression: the progress line's total)."""
    with open_binary(path) as handle:
        return sum(1 for line in handle if line.strip())


def read_or_fail(path: Path, read: Callable[[], T]) -> T:
    """``read()``, with a file that cannot be read (a broken ``.gz``) as one ``ValueError``."""
    try:
        return read()
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise ValueError(f"--file {path}: cannot be read ({exc})") from None


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter of a CSV file from its first lines (``,`` when nothing else fits).

    >>> sniff_delimiter(["id;temp;label", "1;20,5;0"]), sniff_delimiter(["a\\tb", "1\\t2"])
    (';', '\\t')
    """
    sample = "\n".join(line.rstrip("\r\n") for line in lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def parse_delimiter(text: str) -> str:
    """``--delimiter``: one character, or ``tab`` / ``\\t``."""
    if text.lower() in ("tab", "\\t"):
        return "\t"
    if len(text) != 1 or text in '\r\n"':
        raise argparse.ArgumentTypeError(f"expected one character (like ';' or tab), got {text!r}")
    return text
