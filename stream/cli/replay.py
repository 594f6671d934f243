"""``driftline replay``: a historical JSONL stream into Kafka, in time order, at its own pace.

Lines are sorted by their time field (epoch milliseconds or ISO-8601, as in the event contract);
a line without a usable time (or not JSON at all) keeps its place right after the line before it,
so corrupt records still reach the worker's dead-letter output where they were:

>>> lines = [b'{"id": 2, "ts": 3000}', b'not json', b'{"id": 1, "ts": "1970-01-01T00:00:01Z"}']
>>> [(ts, line) for ts, line in in_time_order(lines, "ts")]
[(1000, b'{"id": 1, "ts": "1970-01-01T00:00:01Z"}'), (3000, b'{"id": 2, "ts": 3000}'), (3000, b'not json')]

Each line is sent when its time is due: the gap to the first line divided by ``--speed``
(``--max-speed``: no waiting). Keys and bytes are as in ``driftline produce``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Iterable, Iterator

import orjson

from driftline.cli.args import (
    add_bootstrap_argument,
    positive_float,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)
from driftline.cli.produce import MAX_SLEEP_S, send_all
from driftline.learners.events import InvalidRecord, parse_timestamp

#: Lines looked at to tell a JSONL file from something else (a CSV named .txt, a binary).
JSON_CHECK_LINES = 100
_CSV_NAME = re.compile(r"\.(csv|tsv)(\.(gz|bz2|xz))?$", re.IGNORECASE)
_NOT_JSONL = (
    "--file {file} {what}: replay takes JSONL, one event-contract object per line "
    '({{"id": ..., "ts": ..., "x": {{...}}, "y": ...}}); a CSV goes to Kafka with '
    "`driftline produce --file data.csv --target COLUMN`, and a built-in stream becomes JSONL "
    "with `driftline datasets --export NAME --out FILE.jsonl`"
)


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _time_of(line: bytes, field: str) -> int | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    try:
        return parse_timestamp(obj.get(field))
    except InvalidRecord:
        return None


def in_time_order(lines: Iterable[bytes], field: str = "ts") -> list[tuple[int | None, bytes]]:
    """``(time in ms, line)`` sorted by time, stably; untimed lines follow their predecessor
    (at the start of the file: the first timed line). All ``None`` when no line has a time."""
    timed = [(_time_of(line, field), line) for line in lines]
    carry = next((ts for ts, _ in timed if ts is not None), None)
    filled: list[tuple[int | None, int, bytes]] = []
    for index, (ts, line) in enumerate(timed):
        if ts is not None:
            carry = ts
        filled.append((carry, index, line))
    filled.sort(key=lambda entry: (entry[0] or 0, entry[1]))
    return [(ts, line) for ts, _, line in filled]


def on_schedule(timed: list[tuple[int | None, bytes]], speed: float | None) -> Iterator[bytes]:
    """The lines, each released when its time is due at ``speed`` (``None``: at once)."""
    started: float | None = None
    first_ts: int | None = None
    for ts, line in timed:
        if speed is not None and ts is not None:
            now = time.perf_counter()
            if started is None:
                started, first_ts = now, ts
            assert first_ts is not None
            due = started + (ts - first_ts) / 1000 / speed
            while (delay := due - time.perf_counter()) > 0:
                time.sleep(min(delay, MAX_SLEEP_S))
        yield line


@reports_kafka_errors
def cmd_replay(args: argparse.Namespace) -> int:
    from driftline.errors import UsageError
    from driftline.offline.jsonl_events import jsonl_lines

    settings = settings_from_args(args)
    if _CSV_NAME.search(args.file):
        raise UsageError(_NOT_JSONL.format(file=args.file, what="is a CSV file"))
    try:
        lines = list(jsonl_lines(args.file))
    except OSError as exc:
        raise UsageError(f"--file {args.file}: {exc.strerror or exc}") from None
    if args.limit is not None:
        lines = lines[: args.limit]
    if lines and not any(_is_object(line) for line in lines[:JSON_CHECK_LINES]):
        what = f"has no JSON object in its first {min(len(lines), JSON_CHECK_LINES)} lines"
        raise UsageError(_NOT_JSONL.format(file=args.file, what=what))
    timed = in_time_order(lines, args.time_field)
    if timed and all(ts is None for ts, _ in timed) and not args.max_speed:
        raise UsageError(
            f"no line of {args.file} has a time in {args.time_field!r} "
            "(epoch ms or ISO-8601): name it with --time-field, or use --max-speed"
        )
    speed = None if args.max_speed else args.speed
    return send_all(settings, on_schedule(timed, speed), total=len(timed), label="replay")


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    from driftline.cli.args import positive_int

    p = sub.add_parser(
        "replay",
        help="replay a historical JSONL stream into Kafka at its original pace",
        description=wrap(
            "Send the lines of a JSONL file to the events topic in the order of their "
            "time field, each when its time is due: the original gaps divided by --speed. Lines "
            "without a time keep their place after the line before them."
        ),
        epilog="examples:\n  driftline replay --file day.jsonl --speed 60     one hour per minute\n"
        "  driftline replay --file day.jsonl --max-speed --time-field event_time",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--file",
        metavar="PATH",
        required=True,
        help="JSONL in the event contract (.gz, .bz2, .xz read through); not CSV",
    )
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=positive_float,
        default=1.0,
        metavar="X",
        help="X times the original pace (default 1: real time)",
    )
    pace.add_argument("--max-speed", action="store_true", help="no waiting: as fast as possible")
    p.add_argument(
        "--time-field",
        default="ts",
        metavar="NAME",
        help="the field with the event time, epoch ms or ISO-8601 (default ts)",
    )
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N lines")
    add_bootstrap_argument(p)
    commands["replay"] = cmd_replay
