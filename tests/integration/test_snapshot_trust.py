"""Snapshots that cannot be rolled back or wiped, on the real broker (issue 7, part 4):

* a forged newest record, an older valid one re-published under the newest's key, and an older
  one re-published after a newer one under its own key: the newest valid snapshot is restored
  and each of the three is counted and logged;
* the newest snapshot deleted (a tombstone: a rollback by deletion) and the worker restarted: the
  floor, committed outside the topic, survives the restart and the partition is held (alert, not
  restarted from 0) until ``driftline snapshots reset`` starts it afresh on purpose;
* nothing but forged records: held with a ``snapshot_refused`` alert, no prediction;
* a snapshot larger than a record (adaptive random forest, chunks of 64 KiB) round-trips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import orjson
import pytest

from driftline.learners.snapshot import read_header, sign_snapshot
from driftline.live.snapshot_floor import Floor, FloorStore
from driftline.live.snapshot_records import Assembler, SnapshotSet, snapshot_key
from integration.test_live_worker import (
    REPO_DIR,
    SNAPSHOT_KEY,
    Live,
    live_factory,  # noqa: F401 (a fixture)
    predictions_by_id,
    sea_events,
    wait_predictions,
)

pytestmark = pytest.mark.integration

KEY = SNAPSHOT_KEY.encode()
OTHER_KEY = bytes.fromhex("5e0c9a7b3f1d2e4a6b8c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c")


def snapshot_sets(live: Live) -> tuple[list[SnapshotSet], list[Any]]:
    """The complete snapshot sets of partition 0 (highest rank first) and the raw records."""
    records = live.reader(live.topics.snapshots).read_to_end()
    reader = Assembler(live.app_id, [0], KEY)
    for r in records:
        reader.add(r.key, r.offset, r.value, r.headers, r.partition, r.timestamp)
    return reader.finish()[0], records


def metric(live: Live, proc: Any, name: str) -> float:
    for line in live.metrics(proc).splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return 0.0


def run_first(live: Live, events: list[dict[str, Any]]) -> Any:
    live.produce_events(events)
    worker = live.start("first")
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in events}, worker)
    assert live.stop(worker) == 0
    return predictions


def test_forged_and_republished_snapshots_are_refused_the_newest_valid_restored(
    live_factory: Any,  # noqa: F811
) -> None:
    live = live_factory(partitions=1, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="100")
    first, second = sea_events(1000), sea_events(500, start=1000)
    predictions = run_first(live, first)
    sets, records = snapshot_sets(live)
    newest = sets[0]
    n = newest.sequence
    assert n >= 9 and newest.header is not None and newest.header["watermark"] == 999
    by_seq = {s.sequence: s for s in sets}
    raw = {r.offset: r for r in records}

    # 1. a forgery claiming to be far newer, under the newest's own key
    header = {**newest.header, "sequence": n + 100, "watermark": 10**9}
    forged = sign_snapshot({"anything": "at all"}, header, OTHER_KEY)
    # 2. an older valid snapshot, byte for byte, under the newest's key
    older = raw[by_seq[n - 1].offset]
    # 3. an older valid snapshot re-published under its own key after a newer one there
    oldest = raw[by_seq[n - 4].offset]
    live.producer.send(live.topics.snapshots, key=newest.key.encode(), value=forged)
    live.producer.send(
        live.topics.snapshots, key=newest.key.encode(), value=older.value, headers=older.headers
    )
    live.producer.send(
        live.topics.snapshots, key=oldest.key, value=oldest.value, headers=oldest.headers
    )
    live.producer.flush(timeout=30)
    live.produce_events(second)

    worker = live.start("second")
    wait_predictions(live, predictions, {e["id"] for e in first + second}, worker)
    live.wait_assigned(worker, {0})
    assert metric(live, worker, 'driftline_snapshots_refused_total{partition="0"}') == 3.0
    assert live.stop(worker) == 0
    log = live.log(worker)
    assert log.count("REFUSED the snapshot") == 3, log[-3000:]
    assert "signature does not verify" in log
    assert f"sequence {n - 1} belongs in slot" in log
    assert f"sequence {n - 4} published under {oldest.key.decode()} after sequence" in log
    assert f"(sequence {n}, 1 chunk(s)): watermark 999" in log

    by_id = predictions_by_id(predictions.read_to_end())
    assert all(len(by_id[e["id"]]) == 1 for e in first)  # resumed after them, not from 0
    assert {e["id"] for e in second} <= set(by_id)
    assert snapshot_sets(live)[0][0].sequence > n


def test_a_deleted_newest_snapshot_holds_the_partition_across_restarts_until_reset(
    live_factory: Any,  # noqa: F811
) -> None:
    live = live_factory(partitions=1, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="100")
    first, second = sea_events(600), sea_events(100, start=600)
    predictions = run_first(live, first)
    sets, _ = snapshot_sets(live)
    n = sets[0].sequence
    store = FloorStore(live.settings, KEY)
    try:
        floor = store.read([0])[0]
    finally:
        store.close()
    assert floor == Floor(n, 599)  # committed outside the topic, signed

    # A writer of the topic deletes the newest snapshot: the older ones would roll it back.
    live.producer.send(live.topics.snapshots, key=sets[0].key.encode(), value=None)
    live.producer.flush(timeout=30)
    live.produce_events(second)
    alerts = live.reader(live.topics.alerts)
    for attempt in ("restart", "again"):  # a new process each time: the floor is not in memory
        worker = live.start(attempt)
        live.wait(lambda w=worker: "HELD" in live.log(w), 60, "the partition to be held", worker)
        time.sleep(2)
        assert metric(live, worker, 'driftline_partitions_held_total{partition="0"}') == 1.0
        assert metric(live, worker, "driftline_held_partitions") == 1.0
        assert live.stop(worker) == 0
        log = live.log(worker)
        assert f"sequence {n - 1} is older than sequence {n}" in log
        assert "driftline snapshots reset --partition 0 --yes" in log
    held = [orjson.loads(r.value) for r in alerts.read_to_end()]
    assert [a["kind"] for a in held] == ["snapshot_refused", "snapshot_refused"]
    assert "DRIFTLINE_SNAPSHOT_KEY" in held[0]["what_to_do"]
    by_id = predictions_by_id(predictions.read_to_end())
    assert all(len(by_id[e["id"]]) == 1 for e in first)  # not restarted from 0
    assert not {e["id"] for e in second} & set(by_id)  # nothing processed while held

    reset = subprocess.run(
        [sys.executable, "-m", "driftline", "snapshots", "reset", "--partition", "0", "--yes"],
        cwd=REPO_DIR,
        env={**os.environ, **live.base_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert reset.returncode == 0, reset.stderr
    assert f"reset floor at sequence {n + 1}" in reset.stdout
    worker = live.start("after-reset")
    wait_predictions(live, predictions, {e["id"] for e in first + second}, worker)
    assert live.stop(worker) == 0
    assert "reset by `driftline snapshots reset`" in live.log(worker)
    sets, _ = snapshot_sets(live)
    assert sets[0].sequence > n and sets[0].header["learned"] == 700  # type: ignore[index]


def test_only_forged_snapshots_hold_the_partition_with_an_alert(
    live_factory: Any,  # noqa: F811
) -> None:
    live = live_factory(partitions=1)
    events = sea_events(200)
    header = {"format": 2, "partition": 0, "sequence": 3, "watermark": 10**6, "label_watermark": -1}
    for slot in range(4):
        live.producer.send(
            live.topics.snapshots,
            key=snapshot_key(live.app_id, 0, slot).encode(),
            value=sign_snapshot({"x": slot}, header, OTHER_KEY),
        )
    live.producer.flush(timeout=30)
    live.produce_events(events)
    alerts = live.reader(live.topics.alerts)
    predictions = live.reader(live.topics.predictions)
    worker = live.start()
    live.wait(lambda: "HELD" in live.log(worker), 60, "the partition to be held", worker)
    live.wait(lambda: bool(alerts.poll()), 30, "the alert", worker)
    time.sleep(2)
    assert metric(live, worker, 'driftline_snapshots_refused_total{partition="0"}') == 4.0
    assert live.stop(worker) == 0
    (alert,) = [orjson.loads(r.value) for r in alerts.read_to_end()]
    assert alert["kind"] == "snapshot_refused" and alert["action"] == "hold"
    assert "none of its 4 snapshot record(s) verifies" in alert["reason"]
    assert predictions.read_to_end() == []  # not started from scratch
    assert "a fresh model" not in live.log(worker)


def test_a_snapshot_larger_than_a_record_is_chunked_and_restored(
    live_factory: Any,  # noqa: F811
) -> None:
    live = live_factory(
        partitions=1,
        DRIFTLINE_MODEL__NAME="adaptive_random_forest",
        DRIFTLINE_SNAPSHOT__CHUNK_BYTES="65536",
        DRIFTLINE_SNAPSHOT__EVERY_EVENTS="0",
    )
    first, second = sea_events(1500), sea_events(200, start=1500)
    predictions = run_first(live, first)
    sets, records = snapshot_sets(live)
    newest = sets[0]
    assert newest.chunks >= 4 and len(newest.blob) > 3 * 65536
    assert max(len(r.value) for r in records) <= 65536
    assert read_header(newest.blob)["watermark"] == 1499
    live.produce_events(second)
    worker = live.start("second")
    wait_predictions(live, predictions, {e["id"] for e in first + second}, worker)
    assert live.stop(worker) == 0
    assert f", {newest.chunks} chunk(s)): watermark 1499" in live.log(worker)
    by_id = predictions_by_id(predictions.read_to_end())
    assert all(len(by_id[e["id"]]) == 1 for e in first)
