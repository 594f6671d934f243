"""``driftline snapshots reset --partition P --yes``: start a partition afresh, on purpose.

For a partition the worker holds (its snapshots exist but none may be restored: another key, a
forgery, a rollback) when a person decides to start over rather than find the right key. It
deletes the partition's snapshot records (a tombstone per key) and commits a *reset* floor one
above every sequence seen (the floor's and the topic's): the next owner starts a fresh model from
the beginning of its events, and its snapshots continue above every old one, so none of those
can come back. Workers pick it up on their next assignment (restart them, or the held one).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftline.live.kafka_clients import make_producer, read_topic
from driftline.live.snapshot_floor import Floor, FloorStore
from driftline.live.snapshot_records import Assembler, parse_snapshot_key


def reset(settings: Any, args: argparse.Namespace) -> int:
    from driftline.cli.args import snapshot_key
    from driftline.errors import UsageError

    if args.partition is None:
        raise UsageError("reset needs --partition P")
    key = snapshot_key(settings)
    if key is None:
        raise UsageError(
            "reset signs the new floor: set $DRIFTLINE_SNAPSHOT_KEY (or "
            "$DRIFTLINE_SNAPSHOT_KEY_FILE) to the key the workers use"
        )
    app_id = args.app_id or settings.service.app_id
    if app_id != settings.service.app_id:
        raise UsageError("--app-id must be the configured service.app_id for reset")
    p = args.partition
    topic = settings.kafka.topics.snapshots
    reader = Assembler(app_id, [p], key)
    keys: set[bytes] = set()
    for record in read_topic(settings, topic, timeout_s=args.timeout):
        name = record.key.decode("utf-8", "replace") if record.key else ""
        parsed = parse_snapshot_key(name)
        if parsed is None or parsed[0] != app_id or parsed[1] != p:
            continue
        if record.value is None:
            keys.discard(record.key)
        else:
            keys.add(record.key)
        reader.add(record.key, record.offset, record.value, record.headers, record.partition)
    sets = reader.finish().get(p, [])
    store = FloorStore(settings, key)
    try:
        floor = store.read([p]).get(p)
        seen = [s.sequence for s in sets if s.verifies]
        if isinstance(floor, Floor):
            seen.append(floor.sequence)
        new = Floor(max(seen, default=0) + 1, -1, reset=True)
        plan = (
            f"partition {p} of {app_id}: delete {len(keys)} snapshot record key(s) on {topic} "
            f"and commit a reset floor at sequence {new.sequence}: its next owner starts a fresh "
            "model from the beginning of the events topic"
        )
        if not args.yes:
            print(f"would {plan}; run again with --yes to do it", file=sys.stderr)
            return 1
        if keys:
            producer = make_producer(settings, acks="all")
            try:
                for k in sorted(keys):
                    producer.send(topic, key=k, value=None)
                producer.flush(timeout=30)
            finally:
                producer.close(timeout=10)
        store.commit(p, new)
    finally:
        store.close()
    print(f"done: {plan}. Restart the workers (or wait for the next rebalance).")
    return 0
