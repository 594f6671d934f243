#!/usr/bin/env python
"""Restart-to-first-prediction of a live worker after a long history (issue 7, part 3).

    KAFKA_PORT=9092 scripts/kafka-local start             # a local broker (prints its address)
    .venv/bin/python scripts/bench_restart.py --bootstrap 127.0.0.1:9092            # ~3 min
    .venv/bin/python scripts/bench_restart.py --events 50000 --runs 1 --timeline    # smoke test

Nothing is started for you but the processes measured: the broker must be running already.

What it does, on a one-partition topic set of its own:

1. **History.** ``--events`` generated events (8 numeric features ``f0``..``f7``, a label ``y``
   inline, Kafka key = id) are produced as fast as the broker takes them (aiokafka batches).
   ``driftline serve`` (``python -m driftline serve``, the default config; only topics, ports and
   the snapshot key come from ``DRIFTLINE_*``) processes all of them, as ``/health`` shows, and
   is stopped with SIGTERM: it publishes its final snapshot and exits.
2. **Runs** (``--runs``, interleaved so that machine noise hits every case alike). Each run:

   * *baseline*: a fresh app with empty topics (no history, no snapshot): one event is produced,
     a worker started, and the time taken until that event's prediction is on the broker;
   * *restart*: one new event is produced after the history, a worker started on the history's
     app, and the same time measured: reading the snapshot topic, verifying and unpickling the
     newest snapshot, seeking, fetching and predicting are all in it;
   * *after kill -9* (``--kill``): a worker on the history is given ``snapshot.every_events / 2``
     more events, killed with SIGKILL once it processed them (no final snapshot, and no periodic
     one since its start), and a new one started as above: it replays those events from the
     snapshot it restored before it reaches the new one (the count replayed is printed, from the
     resume offset in its log). The broker only hands the partition over once the killed
     member's session has expired (``SESSION_TIMEOUT_S``, 10 s, after its last heartbeat): the
     new worker waits in its group join for what is left of it.

   Every worker measured is stopped with SIGTERM after its prediction (the killed one excepted).
   Time = the prediction's log-append time on the broker (1 ms resolution) - the wall time just
   before the worker process was spawned (Python start and imports are included). The worker's
   own log line ``assigned ... (restored in X s)`` gives the time from partition assignment to
   the restored engine in place (snapshot read, verified, unpickled, offsets sought).

Printed: every run, the medians, the ratio restart / baseline, the snapshot size (newest set,
chunks, and every byte on the snapshot topic that a restart reads), and with ``--timeline`` the
worker log's milestones of the last restart (seconds since spawn) to show where the time goes.

Every run gets its own topics and consumer groups (deleted at the end), every subprocess is
killed in ``finally`` and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "scripts"))

import orjson  # noqa: E402
from bench_live import (  # noqa: E402
    LOG_APPEND,
    BenchError,
    Process,
    Topics,
    broker_answers,
    free_port,
    started,
)

SNAPSHOT_KEY = secrets.token_hex(32)  # a fresh key per run (32 random bytes)
FEATURES = 8
TARGET_S = 5.0
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
#: Slowest processing rate we wait for before calling the history run stuck (events/s).
MIN_RATE = 1000.0

#: Worker log milestones shown by --timeline (first line matching each, in this order).
MILESTONES = [
    ("Faust worker starting", re.compile(r"\[\^Worker\]: Starting")),
    ("consumer started", re.compile(r"Consumer: Starting")),
    ("joined group", re.compile(r"Joined group")),
    ("partitions assigned", re.compile(r"(Setting newly assigned partitions|Elected group)")),
    ("restored (worker line)", re.compile(r"assigned .*restored in")),
    ("worker ready", re.compile(r"Ready")),
]
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
RESTORED = re.compile(r"assigned (\S+); resuming at (.*) \(restored in ([\d.]+) s\)")


# --------------------------------------------------------------------------- events


def history_events(count: int, start: int = 0, seed: int = 7) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` of generated events: 8 features uniform in [0, 10), ``y`` a fixed linear
    rule with 5% label noise, ids ``start``, ``start + 1``, ..."""
    rng = random.Random(seed + start)
    weights = [1.0, -0.5, 0.8, 0.0, 0.3, -1.2, 0.6, 0.1]
    threshold = sum(weights) * 5.0
    for i in range(start, start + count):
        x = {f"f{j}": rng.random() * 10 for j in range(FEATURES)}
        y = sum(w * v for w, v in zip(weights, x.values(), strict=True)) > threshold
        if rng.random() < 0.05:
            y = not y
        yield str(i).encode(), orjson.dumps({"id": i, "x": x, "y": y})


async def produce_fast(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    """Send ``records`` to partition 0 in full batches (aiokafka's batch API, acks=1); wait for
    every acknowledgement. Returns the offset of the first record."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, max_batch_size=1024 * 1024, linger_ms=0
    )
    await producer.start()
    futures = []
    try:
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=0))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        batch.close()
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=0))
        await producer.flush()
        return int((await futures[0]).offset) if futures else -1
    finally:
        await producer.stop()


def produce(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    return asyncio.run(produce_fast(bootstrap, topic, records))


# --------------------------------------------------------------------------- apps and workers


@dataclass
class App:
    """One driftline app: its consumer group, its own topics, its worker environment."""

    topics: Topics
    run: str
    work_dir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from driftline.live.topics import topic_specs
        from driftline.settings import load_settings

        self.names = {
            what: self.topics.name(f"{self.run}-{what}")
            for what in ("events", "labels", "predictions", "alerts", "snapshots", "dead-letter")
        }
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")},
            "DRIFTLINE_BOOTSTRAP": self.topics.bootstrap,
            "DRIFTLINE_SNAPSHOT_KEY": SNAPSHOT_KEY,
            "DRIFTLINE_SERVICE__APP_ID": self.topics.name(self.run),
            "DRIFTLINE_SERVICE__DATA_DIR": str(self.work_dir / f"{self.run}-data"),
            "DRIFTLINE_KAFKA__PARTITIONS": "1",
            **{
                f"DRIFTLINE_KAFKA__TOPICS__{k.upper().replace('-', '_')}": v
                for k, v in self.names.items()
            },
            "PYTHONUNBUFFERED": "1",
            **self.overrides,
        }
        self.settings = load_settings(environ=self.env)
        specs = topic_specs(self.settings)
        self.topics.create(
            [s.name for s in specs],
            {
                s.name: {**s.config, **(LOG_APPEND if s.name == self.names["predictions"] else {})}
                for s in specs
            },
        )

    def start(self, label: str) -> Any:
        """A worker, spawned when the returned context is entered (killed when it exits)."""
        web, metrics = free_port(), free_port()
        env = {
            **self.env,
            "DRIFTLINE_SERVICE__WEB_PORT": str(web),
            "DRIFTLINE_SERVICE__METRICS_PORT": str(metrics),
        }
        argv = [sys.executable, "-m", "driftline", "serve", "--loglevel", "info"]
        return started(argv, env, self.work_dir / f"{self.run}-{label}.log", web)


def health(process: Process) -> dict[str, Any] | None:
    try:
        url = f"http://127.0.0.1:{process.web_port}/health"
        with urllib.request.urlopen(url, timeout=2) as answer:
            return dict(orjson.loads(answer.read()))
    except (OSError, ValueError):
        return None


def wait_watermark(process: Process, offset: int, timeout_s: float, what: str) -> None:
    """Until the worker's partition 0 has processed ``offset`` (``/health``)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        process.check_alive(what)
        status = health(process)
        part = (status or {}).get("partitions", {}).get("0")
        if part is not None:
            last = part["watermark"]
            if last >= offset:
                return
        if time.monotonic() > deadline:
            raise BenchError(
                f"{what}: at offset {last} of {offset} after {timeout_s:.0f} s; end of "
                f"{process.log}:\n{process.tail()}"
            )
        time.sleep(0.5)


def sigterm(process: Process) -> None:
    """SIGTERM: the worker publishes its final snapshot (unless its last periodic one is already
    at its watermark) and exits; SIGKILL if it does not."""
    if process.proc.poll() is not None:
        return
    process.proc.send_signal(signal.SIGTERM)
    try:
        process.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise BenchError(
            f"the worker did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM"
        ) from None


def prediction_time(bootstrap: str, topic: str, offset: int, process: Process, since: int) -> float:
    """Log-append time (s) of the prediction of events offset ``offset``, read from offset
    ``since`` of ``topic`` (the worker must stay up until it comes)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, since)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=50, max_records=10_000).values():
                for record in records:
                    if orjson.loads(record.value).get("offset") == offset:
                        if record.timestamp_type != 1:
                            raise BenchError(f"{topic} is not stamped with log-append times")
                        return float(record.timestamp) / 1000
            process.check_alive("the worker")
        raise BenchError(
            f"no prediction of offset {offset} within {START_TIMEOUT_S:.0f} s; end of "
            f"{process.log}:\n{process.tail()}"
        )
    finally:
        consumer.close()


def end_of(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


@dataclass
class Restart:
    seconds: float  # spawn -> prediction on the broker
    restored_s: float | None  # the worker's "restored in" figure
    assignments: int
    log: str
    spawned_at: float
    replayed: int | None  # events processed again before the new one (from the resume offset)


def measured_restart(app: App, label: str, event_id: int) -> Restart:
    """Produce one new event, spawn a worker, time it to the event's prediction, SIGTERM it."""
    bootstrap = app.topics.bootstrap
    offset = produce(bootstrap, app.names["events"], history_events(1, start=event_id))
    since = end_of(bootstrap, app.names["predictions"])
    context = app.start(label)
    spawned = time.time()
    with context as process:
        arrived = prediction_time(bootstrap, app.names["predictions"], offset, process, since)
        sigterm(process)
        log = process.tail(10_000_000)
    found = RESTORED.findall(log)
    resumed = re.match(r"\{0: \((\d+)", found[-1][1]) if found else None
    return Restart(
        arrived - spawned,
        float(found[-1][2]) if found else None,
        len(found),
        log,
        spawned,
        offset - int(resumed.group(1)) if resumed else None,
    )


def snapshot_sizes(app: App) -> dict[str, Any]:
    """The newest snapshot set's size and chunks, and what a restart reads from the topic."""
    from kafka import KafkaConsumer, TopicPartition

    from driftline.live.snapshot_records import Assembler
    from driftline.live.topics import SNAPSHOT_MAX_BYTES

    topic = app.names["snapshots"]
    consumer = KafkaConsumer(
        bootstrap_servers=app.topics.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * SNAPSHOT_MAX_BYTES,
        fetch_max_bytes=4 * SNAPSHOT_MAX_BYTES,
    )
    reader = Assembler(app.settings.service.app_id, [0], SNAPSHOT_KEY.encode())
    records = total = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + 120
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise BenchError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=200).values():
                for r in batch:
                    records += 1
                    total += len(r.value or b"") + len(r.key or b"")
                    reader.add(r.key, r.offset, r.value, r.headers, r.partition, r.timestamp)
    finally:
        consumer.close()
    sets = reader.finish().get(0, [])
    if not sets:
        raise BenchError(f"no snapshot that verifies on {topic}")
    newest = sets[0]
    return {
        "bytes": len(newest.blob),
        "chunks": newest.chunks,
        "sequence": newest.sequence,
        "events": (newest.header or {}).get("events"),
        "records": records,
        "topic_bytes": total,
    }


def timeline(log: str, spawned_at: float) -> list[tuple[str, float]]:
    """Seconds since spawn of each milestone's first log line (lines stamped to the ms)."""
    out = []
    for name, pattern in MILESTONES:
        for line in log.splitlines():
            if pattern.search(line):
                stamp = STAMP.match(line)
                if stamp:
                    at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    out.append((name, at - spawned_at))
                break
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("DRIFTLINE_BOOTSTRAP", "127.0.0.1:9092"),
        help="a running broker (default $DRIFTLINE_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events of history the restarted worker has behind it (default 1,000,000)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="interleaved runs of each case; medians (default 3)"
    )
    parser.add_argument(
        "--kill",
        action="store_true",
        help="also the restart after kill -9 (replays snapshot.every_events / 2 events)",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print the worker log's milestones of the last restart (seconds since spawn)",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        metavar="N",
        help="snapshot.every_events of every worker (default: the config's, 10,000); a small N "
        "puts many snapshots on the topic, as hours of a fast stream do before compaction",
    )
    parser.add_argument(
        "--keep-logs", metavar="DIR", help="copy the worker logs here (default: discarded)"
    )
    args = parser.parse_args()
    if args.events < 1 or args.runs < 1:
        parser.error("--events and --runs must be >= 1")
    if not broker_answers(args.bootstrap):
        print(
            f"bench_restart: no Kafka broker answers at {args.bootstrap}. Start one with\n"
            "    KAFKA_PORT=9092 scripts/kafka-local start      (stop it: scripts/kafka-local stop)\n"
            "and pass its address as --bootstrap HOST:PORT.",
            file=sys.stderr,
        )
        return 2
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench_restart: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap
    # (a producer's retry on a topic just created, whose leader is not known yet: not news)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    print(f"command: {shlex.join(['python', 'scripts/bench_restart.py', *sys.argv[1:]])}")
    print(
        f"{args.events:,} events of history ({FEATURES} numeric features, labels inline), one "
        f"partition, default config"
        + (f" but snapshot.every_events {args.snapshot_every:,}" if args.snapshot_every else "")
        + f"; {args.runs} run(s); {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, broker {bootstrap}",
        flush=True,
    )
    topics = Topics(bootstrap)
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        work_dir = Path(tmp)
        try:
            return measure(args, topics, work_dir)
        finally:
            if args.keep_logs:
                target = Path(args.keep_logs)
                target.mkdir(parents=True, exist_ok=True)
                for log in work_dir.glob("*.log"):
                    (target / log.name).write_bytes(log.read_bytes())
            topics.delete()


def measure(args: argparse.Namespace, topics: Topics, work_dir: Path) -> int:
    bootstrap = args.bootstrap
    n = args.events
    overrides = {}
    if args.snapshot_every is not None:
        overrides["DRIFTLINE_SNAPSHOT__EVERY_EVENTS"] = str(args.snapshot_every)
    history = App(topics, "hist", work_dir, overrides)
    every = history.settings.snapshot.every_events
    lost = max(1, every // 2)  # events a kill -9 makes the next worker replay

    started_at = time.monotonic()
    produce(bootstrap, history.names["events"], history_events(n))
    print(f"history: {n:,} events produced in {time.monotonic() - started_at:.1f} s", flush=True)
    started_at = time.monotonic()
    with history.start("history") as process:
        wait_watermark(process, n - 1, START_TIMEOUT_S + n / MIN_RATE, "the history worker")
        elapsed = time.monotonic() - started_at
        sigterm(process)
    print(f"history: processed by one worker in {elapsed:.1f} s, stopped with SIGTERM", flush=True)
    before = snapshot_sizes(history)

    next_id = n
    cases: dict[str, list[Restart]] = {"baseline": [], "restart": [], "kill": []}
    for i in range(args.runs):
        base = App(topics, f"base{i}", work_dir, overrides)
        cases["baseline"].append(measured_restart(base, "run", 0))
        cases["restart"].append(measured_restart(history, f"restart{i}", next_id))
        next_id += 1
        line = (
            f"  run {i + 1}: baseline {cases['baseline'][-1].seconds:.2f} s, "
            f"restart {cases['restart'][-1].seconds:.2f} s "
            f"(restored in {cases['restart'][-1].restored_s} s)"
        )
        if args.kill:
            with history.start(f"crash{i}") as process:
                first = produce(
                    bootstrap, history.names["events"], history_events(lost, start=next_id)
                )
                next_id += lost
                wait_watermark(process, first + lost - 1, START_TIMEOUT_S, "the worker to kill")
                process.kill()  # SIGKILL: no final snapshot
            cases["kill"].append(measured_restart(history, f"after-kill{i}", next_id))
            next_id += 1
            line += (
                f", after kill -9 {cases['kill'][-1].seconds:.2f} s "
                f"(replayed {cases['kill'][-1].replayed:,})"
            )
        print(line, flush=True)

    after = snapshot_sizes(history)
    median = {k: statistics.median(r.seconds for r in v) for k, v in cases.items() if v}
    restored = [r.restored_s for r in cases["restart"] if r.restored_s is not None]
    print(f"\n{'case':<48} {'median s':>8}  {'vs baseline':>11}   runs (s, spawn to prediction)")
    labels = {
        "baseline": "baseline: fresh worker, no history",
        "restart": f"restart after {n:,} events (SIGTERM before)",
        "kill": f"restart after kill -9 (replays {lost:,})",
    }
    for case, runs in cases.items():
        if not runs:
            continue
        shown = " ".join(f"{r.seconds:.2f}" for r in runs)
        print(
            f"{labels[case]:<48} {median[case]:>8.2f}  {median[case] / median['baseline']:>10.2f}x"
            f"   {shown}"
        )
    print(
        f"restore (assigned -> restored, worker log): median "
        f"{statistics.median(restored) if restored else float('nan'):.2f} s   "
        + " ".join(f"{r:.1f}" for r in restored)
    )
    assignments = [r.assignments for r in cases["restart"] + cases["kill"]]
    print(f"assignments per restarted worker: {assignments} (1 = no rebalance)")
    print(
        f"snapshot after the history: {before['bytes'] / 1024:,.1f} KiB in {before['chunks']} "
        f"chunk(s), sequence {before['sequence']}; the topic holds {before['records']} records, "
        f"{before['topic_bytes'] / 1024:,.1f} KiB (what a restart reads)"
    )
    print(
        f"at the end: {after['bytes'] / 1024:,.1f} KiB, topic {after['records']} records, "
        f"{after['topic_bytes'] / 1024:,.1f} KiB"
    )
    verdict = "met" if median["restart"] <= TARGET_S else "NOT met"
    print(f"target restart-to-first-prediction <= {TARGET_S:g} s: {verdict}")
    if args.timeline:
        last = cases["restart"][-1]
        print("\nlast restart, worker log milestones (s since spawn; log stamps to the ms):")
        for name, at in timeline(last.log, last.spawned_at):
            print(f"  {at:6.2f}  {name}")
        print(f"  {last.seconds:6.2f}  prediction on the broker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
