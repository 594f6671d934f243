"""Late labels on the real broker: none is lost, and where each is applied is a function of the
data (the records' times), not of fetch timing, so a replay predicts what the first run did and
one partition live predicts what ``driftline backtest --label-delay`` predicts.

The README's commands as a user runs them: ``driftline serve``, then ``driftline produce
--dataset sea-abrupt --rate 2000 --label-delay 100`` while it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.label_order import LabelOrder, Record
from driftline.learners.engine import Engine
from driftline.offline.backtest import run_backtest
from driftline.offline.sources import open_source
from integration.test_live_worker import (
    OUTPUT_TIMEOUT_S,
    REPO_DIR,
    Live,
    live_factory,
    newest_snapshots,
    predictions_by_id,
    values,
    wait_predictions,
    without_ts,
)

pytestmark = pytest.mark.integration
__all__ = ["live_factory"]  # the fixture, imported for pytest

EVENTS = 20_000  # sea-abrupt, the whole stream
LABEL_DELAY = 100


def produce(live: Live, *args: str) -> subprocess.Popen[bytes]:
    """``driftline produce ...`` in the background, as a user runs it beside the worker."""
    with open(live.tmp_path / f"produce-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "driftline", "produce", *args],
            cwd=REPO_DIR,
            env={**os.environ, **live.base_env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def metric(live: Live, proc: Any, name: str) -> float:
    total = 0.0
    for line in live.metrics(proc).splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.split()[-1])
    return total


def status_sum(live: Live, proc: Any, field: str) -> int:
    status = live.health(proc)
    return 0 if status is None else sum(p[field] for p in status["partitions"].values())


def backtest_outputs(live: Live, tmp_path: Path, limit: int) -> tuple[list[dict], list[dict], dict]:
    out = tmp_path / "backtest"
    summary = run_backtest(
        live.settings,
        open_source(dataset="sea-abrupt", limit=limit),
        out_dir=out,
        label_delay=LABEL_DELAY,
        show_progress=False,
    )
    predictions = [orjson.loads(x) for x in (out / "predictions.jsonl").read_bytes().splitlines()]
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    return predictions, alerts, summary


def assert_every_prediction_as_in_the_backtest(
    published: Sequence[Any], expected: list[dict[str, Any]]
) -> dict[Any, list[dict[str, Any]]]:
    expected_by_id = {p["id"]: p for p in expected}
    by_id = predictions_by_id(list(published))
    assert set(by_id) == set(expected_by_id)  # every event predicted
    differ = [i for i, ps in by_id.items() if any(p != expected_by_id[i] for p in ps)]
    assert not differ, (
        f"{len(differ)} events predicted unlike the backtest, first {differ[:5]}: "
        + "; ".join(
            f"{p['partition']}/{p['offset']}: {p['confidence']} v{p['model_version']}"
            for p in by_id[differ[0]]
        )
        + f" != {expected_by_id[differ[0]]['confidence']}"
        if differ
        else ""
    )
    return by_id


def test_readme_quick_start_loses_no_label_and_predicts_as_the_backtest(
    live_factory: Any, tmp_path: Path
) -> None:
    # The README's commands; labels.max_idle_ms above its 50 ms default only because a loaded CI
    # machine can hold the producer back longer (a label that then comes late is counted below).
    live = live_factory(partitions=1, DRIFTLINE_LABELS__MAX_IDLE_MS="200")
    worker = live.start()
    live.wait_assigned(worker, {0})
    producer = produce(
        live, "--dataset", "sea-abrupt", "--rate", "2000", "--label-delay", str(LABEL_DELAY)
    )
    assert producer.wait(timeout=OUTPUT_TIMEOUT_S) == 0
    live.wait(
        lambda: status_sum(live, worker, "learned") == EVENTS,
        OUTPUT_TIMEOUT_S,
        f"{EVENTS} labels learned",
        worker,
    )
    assert metric(live, worker, "driftline_labels_too_late_total") == 0
    assert metric(live, worker, "driftline_labels_reordered_total") == 0
    assert live.stop(worker) == 0

    expected, expected_alerts, summary = backtest_outputs(live, tmp_path, EVENTS)
    assert summary["learned"] == EVENTS
    assert_every_prediction_as_in_the_backtest(
        live.reader(live.topics.predictions).read_to_end(), expected
    )
    alerts = values(live.reader(live.topics.alerts).read_to_end())
    assert alerts, "sea-abrupt drifts: the error detector must fire"
    assert without_ts(alerts) == without_ts(expected_alerts)
    (header,) = newest_snapshots(live).values()
    assert (header["learned"], header["labelled"]) == (EVENTS, EVENTS)


def test_kill_9_with_late_labels_replays_identical_predictions(
    live_factory: Any, tmp_path: Path
) -> None:
    total = 12_000
    # labels.max_idle_ms above its default: a loaded CI machine can hold a producer back longer.
    live = live_factory(
        partitions=1, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="1000", DRIFTLINE_LABELS__MAX_IDLE_MS="300"
    )
    predictions = live.reader(live.topics.predictions)
    worker = live.start("run-0")
    live.wait_assigned(worker, {0})
    producer = produce(
        live,
        "--dataset",
        "sea-abrupt",
        "--limit",
        str(total),
        "--rate",
        "1500",
        "--label-delay",
        str(LABEL_DELAY),
    )
    for run, at in enumerate((2500, 5500, 8500), start=1):
        live.wait(
            lambda at=at, w=worker: status_sum(live, w, "events") >= at,
            OUTPUT_TIMEOUT_S,
            f"{at} events processed",
            worker,
        )
        worker.kill()  # SIGKILL: no final snapshot; outputs in flight may be lost
        worker.wait(timeout=10)
        worker = live.start(f"run-{run}")
    assert producer.wait(timeout=OUTPUT_TIMEOUT_S) == 0
    wait_predictions(live, predictions, set(range(total)), worker)
    live.wait(
        lambda: status_sum(live, worker, "learned") >= total,
        OUTPUT_TIMEOUT_S,
        "every label learned",
        worker,
    )
    assert live.stop(worker) == 0
    assert "restored the snapshot" in live.log(worker)

    expected, _, _ = backtest_outputs(live, tmp_path, total)
    by_id = assert_every_prediction_as_in_the_backtest(predictions.read_to_end(), expected)
    replayed = sum(len(ps) > 1 for ps in by_id.values())
    assert replayed, "three kills should have forced replays"
    (header,) = newest_snapshots(live).values()
    assert (header["learned"], header["labelled"]) == (total, total)  # none lost, none twice


def offline_in_time_order(live: Live) -> dict[int, Engine]:
    """Per partition, an engine fed every event and label in the order their times give
    (driftline.label_order, with everything already read): what any run must have predicted."""
    by_partition: dict[int, tuple[list[Record], list[Record]]] = {}
    for topic, side in ((live.topics.events, 0), (live.topics.labels, 1)):
        for r in sorted(live.reader(topic).read_to_end(), key=lambda r: r.offset):
            record = Record(r.partition, r.offset, r.timestamp, r.value)
            by_partition.setdefault(r.partition, ([], []))[side].append(record)
    engines = {}
    for p, (events, labels) in by_partition.items():
        order = LabelOrder(max_idle_ms=0)
        order.add_events(events)
        order.add_labels(labels)
        engine = Engine(live.settings, partition=p)
        for kind, records in order.take(0.0, 0.0):
            for r in records:
                if kind == "events":
                    engine.process(r.value, r.offset, r.timestamp_ms)
                else:
                    engine.process_label(r.value, r.offset)
        engines[p] = engine
    return engines


def predictions_of(engines: dict[int, Engine]) -> list[dict[str, Any]]:
    """The prediction records of ``engines`` as they read back from the topic (JSON)."""
    return [
        orjson.loads(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS))
        for engine in engines.values()
        for r in engine.outputs.drain().predictions
    ]


def two_partitions_streaming(
    live_factory: Any, total: int
) -> tuple[Live, subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """Two partitions, a worker ``one`` owning both, and ``driftline produce`` sending ``total``
    events of sea-abrupt at 600/s with late labels: ``(live, one, producer)``."""
    live = live_factory(
        partitions=2, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="500", DRIFTLINE_LABELS__MAX_IDLE_MS="300"
    )
    one = live.start("one")
    live.wait_assigned(one, {0, 1})
    producer = produce(
        live,
        "--dataset",
        "sea-abrupt",
        "--limit",
        str(total),
        "--rate",
        "600",
        "--label-delay",
        str(LABEL_DELAY),
    )
    return live, one, producer


def each_owns_a_partition(live: Live, *workers: subprocess.Popen[bytes]) -> bool:
    return all((status := live.health(w)) is not None and status["assigned"] for w in workers)


@pytest.mark.parametrize("events_before_kill", [0, 500])
def test_a_takeover_with_late_labels_replays_identical_predictions(
    live_factory: Any, events_before_kill: int
) -> None:
    total = 12_000
    live, one, producer = two_partitions_streaming(live_factory, total)
    predictions = live.reader(live.topics.predictions)
    live.wait(lambda: status_sum(live, one, "events") >= 3000, OUTPUT_TIMEOUT_S, "3000 events", one)
    two = live.start("two")  # joins: a partition moves from one to two (revocation snapshot)

    live.wait(
        lambda: each_owns_a_partition(live, one, two),
        OUTPUT_TIMEOUT_S,
        "both workers owning a partition",
        two,
    )
    at_split = status_sum(live, one, "events")  # of the partition one kept (since the start)
    live.wait(
        lambda: status_sum(live, one, "events") >= at_split + events_before_kill,
        OUTPUT_TIMEOUT_S,
        f"{events_before_kill} more events on one",
        one,
    )
    one.kill()  # SIGKILL: its partition goes to two after the session timeout, from a snapshot
    one.wait(timeout=10)
    assert producer.wait(timeout=OUTPUT_TIMEOUT_S) == 0
    live.wait_assigned(two, {0, 1})
    live.wait(
        lambda: status_sum(live, two, "learned") >= total,
        OUTPUT_TIMEOUT_S,
        "every label learned",
        two,
    )
    assert live.stop(two) == 0

    engines = offline_in_time_order(live)
    expected = predictions_of(engines)
    by_id = assert_every_prediction_as_in_the_backtest(predictions.read_to_end(), expected)
    if events_before_kill:
        assert any(len(ps) > 1 for ps in by_id.values()), "the kill should force a replay"
    headers = newest_snapshots(live)
    assert {p: (h["learned"], h["labelled"]) for p, h in headers.items()} == {
        p: (e.counters["learned"], e.counters["labelled"]) for p, e in engines.items()
    }
    assert sum(h["learned"] for h in headers.values()) == total  # none lost, none twice


def test_rebalances_at_the_head_keep_each_partition_in_time_order(live_factory: Any) -> None:
    """A second worker joins and leaves three times while events and late labels stream in: the
    worker that stays resumes its partitions at their watermarks on every rebalance, and must
    read on from there in offset order. (It once read on from where its consumer had fetched to
    before the rebalance, and only after that, following the seek, the records in between: late
    labels were then skipped as already seen, and events predicted unlike the time order.)"""
    total = 12_000
    live, one, producer = two_partitions_streaming(live_factory, total)
    predictions = live.reader(live.topics.predictions)
    live.wait(lambda: status_sum(live, one, "events") >= 1500, OUTPUT_TIMEOUT_S, "1500 events", one)
    for visit in range(3):
        visitor = live.start(f"visitor-{visit}")
        live.wait(
            lambda v=visitor: each_owns_a_partition(live, one, v),
            OUTPUT_TIMEOUT_S,
            "a partition moved to the visitor",
            visitor,
        )
        time.sleep(1)
        assert live.stop(visitor) == 0  # its partition comes back to one, from its snapshot
        live.wait_assigned(one, {0, 1})
    assert producer.wait(timeout=OUTPUT_TIMEOUT_S) == 0
    live.wait(
        lambda: status_sum(live, one, "learned") >= total, OUTPUT_TIMEOUT_S, "every label", one
    )
    assert live.stop(one) == 0

    engines = offline_in_time_order(live)
    expected = predictions_of(engines)
    assert_every_prediction_as_in_the_backtest(predictions.read_to_end(), expected)
    headers = newest_snapshots(live)
    assert sum(h["learned"] for h in headers.values()) == total  # none lost, none twice
