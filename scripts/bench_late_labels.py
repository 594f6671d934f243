#!/usr/bin/env python
"""The live worker with its labels on their own topic, late: per record against micro-batch.

    scripts/kafka-local start                                 # prints the broker's address
    .venv/bin/python scripts/bench_late_labels.py --bootstrap 127.0.0.1:9092

``--events`` seeded ``hyperplane-stationary`` events without their label are produced once to a
one-partition topic; each worker run gets a labels topic holding every event's label, stamped
``--delay`` events after it (``driftline produce --label-delay`` sends them so). The worker
reads both and releases them in time order, so a run of events between two labels is short:
with a delay of 50, one event. Per record (``engine.batch_size = 1``) and micro-batch
(``--batch-size``) run ``--repeats`` times, interleaved; events/s = events / (last
prediction's log-append time - first's), medians, and the micro-batch worker's speed relative to
the per-record one in the same run. Nothing is started but the workers measured: the broker
must be running already. Every run's topics are deleted at the end; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
import bench_live as live  # the worker, topics and rates of the live benchmark


def produced(count: int, delay: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """The events without their label, and the labels, each ``delay`` events later in time."""
    from driftline.offline.datasets import get_dataset

    events = list(get_dataset(live.DATASET).events(limit=count))
    step = events[1]["ts"] - events[0]["ts"]
    unlabelled = [
        (str(e["id"]).encode(), orjson.dumps({k: v for k, v in e.items() if k != "y"}))
        for e in events
    ]
    labels = [
        (
            str(e["id"]).encode(),
            orjson.dumps({"id": e["id"], "y": e["y"], "ts": e["ts"] + delay * step}),
        )
        for e in events
    ]
    return unlabelled, labels


def one_run(
    bootstrap: str,
    topics: live.Topics,
    source: str,
    labels: list[tuple[bytes, bytes]],
    batch: int,
    work_dir: Path,
    run: str,
) -> float:
    names = live.worker_topics(topics, run, source)
    count = len(labels)
    with live.start_worker(bootstrap, topics, names, batch, work_dir, run) as process:
        asyncio.run(live.produce_all(bootstrap, names["labels"], labels))
        live.wait_for_outputs(bootstrap, names["predictions"], count, process, "the worker")
        process.stop()
    return live.rates_of(bootstrap, names["predictions"], count, process.spawned)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="a running broker")
    parser.add_argument("--events", type=int, default=20_000, help="events per run (20000)")
    parser.add_argument("--delay", type=int, default=50, help="label delay in events (50)")
    parser.add_argument("--batch-size", type=int, default=1000, help="micro-batch size (1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (3)")
    args = parser.parse_args()
    if not live.broker_answers(args.bootstrap):
        print(
            f"bench_late_labels: no Kafka broker answers at {args.bootstrap}; start one with "
            "`KAFKA_PORT=9092 scripts/kafka-local start`",
            file=sys.stderr,
        )
        return 2
    print(
        f"{args.events:,} {live.DATASET} events, labels {args.delay} events late on their own "
        f"topic, 1 partition, model.name=linear, {args.repeats} repeat(s), medians",
        flush=True,
    )
    cases = {"per record": 1, f"micro-batch {args.batch_size}": args.batch_size}
    rates: dict[str, list[float]] = {case: [] for case in cases}
    topics = live.Topics(args.bootstrap)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-late-") as tmp:
            source = topics.name("events")
            topics.create([source])
            events, labels = produced(args.events, args.delay)
            asyncio.run(live.produce_all(args.bootstrap, source, events))
            for n in range(args.repeats):
                order = list(cases) if n % 2 == 0 else list(reversed(cases))
                for case in order:
                    run = f"{'mb' if cases[case] > 1 else 'rec'}{n}"
                    rate = one_run(
                        args.bootstrap, topics, source, labels, cases[case], Path(tmp), run
                    )
                    rates[case].append(rate)
                    print(f"  repeat {n + 1}: {case} {rate:,.0f} events/s", flush=True)
    except live.BenchError as exc:
        print(f"bench_late_labels: {exc}", file=sys.stderr)
        return 1
    finally:
        topics.delete()
    median = {case: statistics.median(values) for case, values in rates.items()}
    per_record = median["per record"]
    for case, value in median.items():
        runs = " ".join(f"{rate:,.0f}" for rate in rates[case])
        print(f"{case:<22} {value:>10,.0f} events/s  {value / per_record:5.2f}x   runs {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
