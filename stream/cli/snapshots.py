"""``driftline snapshots list|show|verify|reset|keygen``: the signed model snapshots on the topic,
or in a file.

On the topic a partition's snapshots rotate over ``snapshot.history`` keys
(``<app id>:<partition>:s<slot>``, chunks of a large one under ``...:c<i>``:
:mod:`driftline.live.snapshot_records`); the worker restores the complete one that verifies with the
highest (sequence, watermark) not below the partition's floor, and ``list`` marks it ``*``.

* ``list``: one line per key (its newest snapshot; ``--all``: every one still on the topic):
  partition, sequence, model version, events, learned, watermark, created, size, chunks, whether
  it verifies under the configured key, and ``*`` on the one the worker would restore.
* ``show``: the headers of those snapshots, as one JSON object keyed by snapshot key;
  ``--partition P`` picks one partition.
* ``verify``: verify every snapshot on the topic; exit status 1 if one does not (or is refused).
* ``reset --partition P --yes``: start partition P afresh on purpose (a held partition): deletes
  its snapshot records (tombstones) and commits a reset floor above every sequence seen, so
  its new snapshots continue above the old ones.
* ``keygen``: print a new random key (32 bytes, hex) for ``$DRIFTLINE_SNAPSHOT_KEY``.
* ``show FILE`` / ``verify FILE`` (or ``--file PATH``): the same for a snapshot file.
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

from driftline.cli.args import (
    add_bootstrap_argument,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)
from driftline.learners.snapshot import SnapshotError, read_header, verify
from driftline.live.kafka_clients import read_topic
from driftline.live.snapshot_records import Assembler, SnapshotSet, parse_snapshot_key


@dataclass
class SnapshotRecord:
    """One snapshot on the topic (one record, or its reassembled chunks), checked."""

    snap: SnapshotSet
    app_id: str
    restore: bool = False  # the one the worker would restore for its partition

    @property
    def key(self) -> str:
        return self.snap.key

    @property
    def partition(self) -> int:
        return self.snap.partition

    @property
    def header(self) -> dict[str, Any] | None:
        return self.snap.header

    @property
    def offset(self) -> int:
        return self.snap.offset

    @property
    def verifies(self) -> bool | None:
        return self.snap.verifies

    @property
    def problem(self) -> str:
        return self.snap.problem

    def verdict(self) -> str:
        if self.verifies is None:
            return "no key"
        return "yes" if self.verifies else "NO"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "partition": self.partition,
            "sequence": self.snap.sequence if self.header else None,
            "topic_partition": self.snap.topic_partition,
            "offset": self.offset,
            "timestamp_ms": self.snap.timestamp_ms,
            "bytes": len(self.snap.blob),
            "chunks": self.snap.chunks,
            "verifies": self.verifies,
            "restore": self.restore,
            "problem": self.problem or None,
            # model_params may hold a secret (a model's API key): shown redacted, as settings are.
            "header": _redacted(self.header),
        }


def load_records(
    settings: Any, key: bytes | None, timeout_s: float
) -> tuple[list[SnapshotRecord], list[Any]]:
    """Every snapshot still on the topic, in (key, offset) order, each marked when it is the one
    the worker would restore (the same rule: :func:`driftline.live.recovery.choose`, with the floor of
    this app's partitions when there is a key); and the refusals (records that form none)."""
    from driftline.live.recovery import choose
    from driftline.live.snapshot_floor import Floor, FloorStore

    reader = Assembler(None, None, key)
    for record in read_topic(settings, settings.kafka.topics.snapshots, timeout_s=timeout_s):
        reader.add(
            record.key,
            record.offset,
            record.value,
            record.headers,
            record.partition,
            record.timestamp,
        )
    groups: dict[tuple[str, int], list[SnapshotSet]] = {}
    for sets in reader.finish().values():
        for snap in sets:
            parsed = parse_snapshot_key(snap.key)
            groups.setdefault((parsed[0] if parsed else "", snap.partition), []).append(snap)
    app_id = settings.service.app_id
    floors: dict[int, Any] = {}
    if key is not None and any(app == app_id for app, _ in groups):
        store = FloorStore(settings, key)
        try:
            floors = store.read([p for app, p in groups if app == app_id])
        finally:
            store.close()
    out: list[SnapshotRecord] = []
    for (app, p), group in groups.items():
        floor = floors.get(p) if app == app_id else None
        best, _ = choose(group, floor if isinstance(floor, Floor) else None)
        out += [SnapshotRecord(s, app, restore=s is best) for s in group]
    out.sort(key=lambda r: (r.key, r.offset))
    return out, reader.refusals


def newest_per_key(records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    newest: dict[str, SnapshotRecord] = {}
    for record in records:
        if record.key not in newest or record.offset > newest[record.key].offset:
            newest[record.key] = record
    return sorted(newest.values(), key=lambda r: (r.app_id, r.partition, r.key))


def _created(record: SnapshotRecord) -> str:
    created = (record.header or {}).get("created_at")
    seconds = created if isinstance(created, int | float) else record.snap.timestamp_ms / 1000
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _field(record: SnapshotRecord, name: str) -> str:
    value = (record.header or {}).get(name)
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def print_table(records: list[SnapshotRecord]) -> None:
    print(
        f"{'key':<24} {'partition':>9} {'sequence':>8} {'version':>7} {'events':>10} "
        f"{'learned':>10} {'watermark':>10} {'created':<20} {'bytes':>11} {'chunks':>6}  "
        "verifies"
    )
    for r in records:
        line = (
            f"{r.key:<24} {r.partition:>9} {_field(r, 'sequence'):>8} "
            f"{_field(r, 'model_version'):>7} {_field(r, 'events'):>10} "
            f"{_field(r, 'learned'):>10} {_field(r, 'watermark'):>10} {_created(r):<20} "
            f"{len(r.snap.blob):>11,} {r.snap.chunks:>6}  {r.verdict()}"
        )
        if r.restore:
            line += " *"
        if r.problem:
            line += f" ({r.problem})"
        print(line)
    if any(r.restore for r in records):
        print(
            "* the snapshot the worker restores for its partition (highest sequence, then watermark)"
        )


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
    from driftline.cli.args import snapshot_key
    from driftline.errors import UsageError
    from driftline.live.kafka_clients import TopicError

    if args.action == "keygen":
        from driftline.learners.snapshot import new_key

        print(new_key())
        return 0
    settings = settings_from_args(args)
    if args.action == "reset":
        from driftline.cli.snapshots_reset import reset

        return reset(settings, args)
    if args.path and args.file:
        raise UsageError("name the snapshot file once: FILE or --file PATH")
    path = args.path or args.file
    if path:
        if args.action not in ("show", "verify"):
            raise UsageError(
                f"{args.action} reads the snapshot topic; for a file use show or verify"
            )
        # Showing a header needs no key: a bad key setting must not get in its way.
        return _file_command(
            args, path, snapshot_key(settings) if args.action == "verify" else None
        )
    key = snapshot_key(settings)

    topic = settings.kafka.topics.snapshots
    try:
        records, refusals = load_records(settings, key, args.timeout)
    except TopicError as exc:
        print(f"driftline snapshots: no snapshots: {exc}", file=sys.stderr)
        return 1 if args.action == "show" else 0
    if args.app_id is not None:
        records = [r for r in records if r.app_id == args.app_id]
        refusals = [r for r in refusals if r.key.startswith(f"{args.app_id}:")]
    if args.partition is not None:
        records = [r for r in records if r.partition == args.partition]
        refusals = [r for r in refusals if r.partition == args.partition]

    if args.action == "verify":
        return _verify_all(records, refusals, key, topic)
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


def _verify_all(
    records: list[SnapshotRecord], refusals: list[Any], key: bytes | None, topic: str
) -> int:
    if key is None:
        print(
            "driftline snapshots: cannot verify: no snapshot key configured "
            "(set $DRIFTLINE_SNAPSHOT_KEY or $DRIFTLINE_SNAPSHOT_KEY_FILE)",
            file=sys.stderr,
        )
        return 1
    # Records that form no snapshot (incomplete or mismatching chunks, unreadable headers); the
    # refusals of complete ones are their rows.
    listed = {(r.key, r.offset) for r in records}
    others = [r for r in refusals if (r.key, r.offset) not in listed]
    if not records and not others:
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
    for o in others:
        print(f"{o.key} (offset {o.offset}): {o.reason}")
    print(
        f"{len(records)} snapshots on {topic}: {len(records) - len(refused)} verify, "
        f"{len(refused) + len(others)} refused"
    )
    return 1 if refused or others else 0


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    from driftline.cli.args import positive_float

    p = sub.add_parser(
        "snapshots",
        help="list, show, verify or reset model snapshots (on the topic, or a file); keygen",
        description=wrap(
            "On the snapshot topic: list (newest per key: partition, sequence, model version, "
            "events, learned, watermark, created, chunks, verifies; * marks the one the worker "
            "restores), show (headers as JSON), verify (every snapshot; exit 1 if one does not "
            "verify), reset --partition P --yes (start a held partition afresh on purpose). "
            "keygen prints a new random key. With FILE (or --file PATH): show the header "
            "or verify the signature of a snapshot file. Keys: $DRIFTLINE_SNAPSHOT_KEY or "
            "$DRIFTLINE_SNAPSHOT_KEY_FILE."
        ),
        epilog="examples:\n  driftline snapshots list\n  driftline snapshots show --partition 0\n"
        "  driftline snapshots verify\n  driftline snapshots verify out/model.snapshot\n"
        "  driftline snapshots reset --partition 0 --yes\n"
        "  export DRIFTLINE_SNAPSHOT_KEY=$(driftline snapshots keygen)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["list", "show", "verify", "reset", "keygen"])
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
        "--yes", action="store_true", help="reset: do it (without: only say what it would do)"
    )
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
    # Imported here: driftline.settings brings River, which `driftline --help` must not load.
    from driftline.settings import redact

    return redact(header) if header is not None else None
