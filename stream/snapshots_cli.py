"""``driftline snapshots list|show|verify``: the signed model snapshots on the topic, or in a file.

On the topic a snapshot's key is ``<app id>:<partition>`` and its value the signed blob of
:func:`learners.snapshot.sign_snapshot`. The topic is compacted: the newest record of a key is
what a worker restores; older ones linger until the log cleaner runs (``list --all`` shows them).

* ``list``: one line per key (newest): partition, model version, events, learned, watermark,
  created, size, and whether it verifies under the configured key.
* ``show``: the header (lineage, counters, watermark) of the newest snapshot of each key, as one
  JSON object keyed by snapshot key; ``--partition P`` picks one partition.
* ``verify``: verify every snapshot on the topic; exit status 1 if one does not.
* ``show FILE`` / ``verify FILE`` (or ``--file PATH``): the same for a snapshot file.

>>> split_key("driftline:3")
('driftline', 3)
>>> split_key("odd")
('odd', None)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from learners.snapshot import SnapshotError, read_header, verify
from stream.kafka_clients import (
    add_bootstrap_argument,
    read_topic,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)


def split_key(key: str) -> tuple[str, int | None]:
    """``"<app id>:<partition>"`` to ``(app id, partition)``; partition ``None`` if not a number."""
    app_id, sep, part = key.rpartition(":")
    if sep and part.isdigit():
        return app_id, int(part)
    return key, None


@dataclass
class SnapshotRecord:
    """One snapshot record of the topic, its header read and its signature checked."""

    key: str
    topic_partition: int
    offset: int
    timestamp_ms: int
    size: int
    header: dict[str, Any] | None
    #: True / False; None when no key is configured.
    verifies: bool | None
    problem: str = ""

    @property
    def partition(self) -> int | None:
        if self.header and isinstance(self.header.get("partition"), int):
            return int(self.header["partition"])
        return split_key(self.key)[1]

    @property
    def app_id(self) -> str:
        return split_key(self.key)[0]

    def verdict(self) -> str:
        if self.verifies is None:
            return "no key"
        return "yes" if self.verifies else "NO"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "partition": self.partition,
            "topic_partition": self.topic_partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "bytes": self.size,
            "verifies": self.verifies,
            "problem": self.problem or None,
            # model_params may hold a secret (a model's API key): shown redacted, as settings are.
            "header": _redacted(self.header),
        }


def inspect_blob(blob: bytes, key: bytes | None) -> tuple[dict[str, Any] | None, bool | None, str]:
    """``(header or None, verifies, problem)``: the header is read even when it does not verify
    (for the listing), and ``verifies`` is ``None`` when there is no key to check with."""
    try:
        header: dict[str, Any] | None = read_header(blob)
    except SnapshotError as exc:
        return None, False, str(exc)
    if key is None:
        return header, None, ""
    try:
        verify(blob, key)
    except SnapshotError as exc:
        return header, False, str(exc)
    return header, True, ""


def load_records(settings: Any, key: bytes | None, timeout_s: float) -> list[SnapshotRecord]:
    """Every snapshot still on the topic (tombstones left out), in (key, offset) order."""
    out = []
    for record in read_topic(settings, settings.kafka.topics.snapshots, timeout_s=timeout_s):
        if record.value is None:
            continue  # a tombstone: the snapshot of that key was deleted
        name = record.key.decode("utf-8", errors="replace") if record.key else ""
        header, verifies, problem = inspect_blob(record.value, key)
        out.append(
            SnapshotRecord(
                key=name,
                topic_partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                size=len(record.value),
                header=header,
                verifies=verifies,
                problem=problem,
            )
        )
    out.sort(key=lambda r: (r.key, r.offset))
    return out


def newest_per_key(records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    newest: dict[str, SnapshotRecord] = {}
    for record in records:
        if record.key not in newest or record.offset > newest[record.key].offset:
            newest[record.key] = record
    return sorted(newest.values(), key=lambda r: (r.app_id, r.partition or 0, r.key))


def _created(record: SnapshotRecord) -> str:
    created = (record.header or {}).get("created_at")
    seconds = created if isinstance(created, int | float) else record.timestamp_ms / 1000
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field(record: SnapshotRecord, name: str) -> str:
    value = (record.header or {}).get(name)
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def print_table(records: list[SnapshotRecord]) -> None:
    print(
        f"{'key':<24} {'partition':>9} {'version':>7} {'events':>10} {'learned':>10} "
        f"{'watermark':>10} {'created':<20} {'bytes':>9}  verifies"
    )
    for r in records:
        partition = "-" if r.partition is None else str(r.partition)
        line = (
            f"{r.key:<24} {partition:>9} {_field(r, 'model_version'):>7} "
            f"{_field(r, 'events'):>10} {_field(r, 'learned'):>10} "
            f"{_field(r, 'watermark'):>10} {_created(r):<20} {r.size:>9,}  {r.verdict()}"
        )
        if r.problem:
            line += f" ({r.problem})"
        print(line)


# --------------------------------------------------------------------------- files


def _file_command(args: argparse.Namespace, path: str, key: bytes | None) -> int:
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        print(f"driftline snapshots: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        if args.action == "verify":
            header = verify(blob, key)
            print(
                f"{path}: signature verifies (model version {header.get('model_version')}, "
                f"watermark {header.get('watermark')})"
            )
        else:
            print(orjson.dumps(_redacted(read_header(blob)), option=orjson.OPT_INDENT_2).decode())
    except SnapshotError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- command


@reports_kafka_errors
def cmd_snapshots(args: argparse.Namespace) -> int:
    from stream.cli import UsageError, _snapshot_key
    from stream.topics import TopicError

    settings = settings_from_args(args)
    if args.path and args.file:
        raise UsageError("name the snapshot file once: FILE or --file PATH")
    path = args.path or args.file
    if path:
        if args.action == "list":
            raise UsageError("list reads the snapshot topic; for a file use show or verify")
        # Showing a header needs no key: a bad key setting must not get in its way.
        return _file_command(
            args, path, _snapshot_key(settings) if args.action == "verify" else None
        )
    key = _snapshot_key(settings)

    topic = settings.kafka.topics.snapshots
    try:
        records = load_records(settings, key, args.timeout)
    except TopicError as exc:
        print(f"driftline snapshots: no snapshots: {exc}", file=sys.stderr)
        return 1 if args.action == "show" else 0
    if args.app_id is not None:
        records = [r for r in records if r.app_id == args.app_id]
    if args.partition is not None:
        records = [r for r in records if r.partition == args.partition]

    if args.action == "verify":
        return _verify_all(records, key, topic)
    newest = newest_per_key(records)
    if args.action == "show":
        if not newest:
            print(f"driftline snapshots: no snapshot on {topic} matches", file=sys.stderr)
            return 1
        shown = {r.key: {k: v for k, v in r.as_dict().items() if k != "key"} for r in newest}
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return 0
    listed = records if args.all else newest
    if args.json:
        print(orjson.dumps([r.as_dict() for r in listed], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not listed:
        print(f"no snapshots on {topic}")
        return 0
    print_table(listed)
    if key is None:
        print("(verifies: no key; set $DRIFTLINE_SNAPSHOT_KEY or $DRIFTLINE_SNAPSHOT_KEY_FILE)")
    return 0


def _verify_all(records: list[SnapshotRecord], key: bytes | None, topic: str) -> int:
    if key is None:
        print(
            "driftline snapshots: cannot verify: no snapshot key configured "
            "(set $DRIFTLINE_SNAPSHOT_KEY or $DRIFTLINE_SNAPSHOT_KEY_FILE)",
            file=sys.stderr,
        )
        return 1
    if not records:
        print(f"no snapshots on {topic}: nothing to verify")
        return 0
    refused = [r for r in records if not r.verifies]
    for r in records:
        where = f"{r.key} (offset {r.offset})"
        if r.verifies:
            print(
                f"{where}: verifies, model version {_field(r, 'model_version')}, "
                f"watermark {_field(r, 'watermark')}"
            )
        else:
            print(f"{where}: {r.problem}")
    print(
        f"{len(records)} snapshots on {topic}: {len(records) - len(refused)} verify, "
        f"{len(refused)} refused"
    )
    return 1 if refused else 0


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    from stream.cli import positive_float

    p = sub.add_parser(
        "snapshots",
        help="list, show or verify model snapshots (on the topic, or a file)",
        description=wrap(
            "On the snapshot topic: list (newest per key: partition, model version, "
            "events, learned, watermark, created, verifies), show (headers as JSON), verify (every "
            "snapshot; exit 1 if one does not verify). With FILE (or --file PATH): show the header "
            "or verify the signature of a snapshot file. Keys: $DRIFTLINE_SNAPSHOT_KEY or "
            "$DRIFTLINE_SNAPSHOT_KEY_FILE."
        ),
        epilog="examples:\n  driftline snapshots list\n  driftline snapshots show --partition 0\n"
        "  driftline snapshots verify\n  driftline snapshots verify out/model.snapshot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["list", "show", "verify"])
    p.add_argument("path", nargs="?", metavar="FILE", help="a snapshot file instead of the topic")
    p.add_argument("--file", metavar="PATH", help="a snapshot file instead of the topic")
    p.add_argument("--partition", type=int, metavar="P", help="only the snapshots of partition P")
    p.add_argument("--app-id", metavar="ID", help="only the snapshots of this service app id")
    p.add_argument(
        "--all",
        action="store_true",
        help="list: every snapshot still on the topic, not only the newest per key",
    )
    p.add_argument("--json", action="store_true", help="list: print JSON")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="give up reading the topic after S seconds (10)",
    )
    add_bootstrap_argument(p)
    commands["snapshots"] = cmd_snapshots


def _redacted(header: dict[str, Any] | None) -> dict[str, Any] | None:
    # Imported here: stream.settings brings River, which `driftline --help` must not load.
    from stream.settings import redact

    return redact(header) if header is not None else None
