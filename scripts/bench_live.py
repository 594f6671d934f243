#!/usr/bin/env python
"""The live worker on a real broker against a raw aiokafka loop and a Quix Streams app.

    scripts/kafka-local start                        # a local broker (prints its address)
    .venv/bin/pip install -e '.[bench]'              # quixstreams, for the Quix Streams case
    .venv/bin/python scripts/bench_live.py --bootstrap 127.0.0.1:9092
    .venv/bin/python scripts/bench_live.py --quick   # smaller, for a smoke test (~2 min)

Nothing is started for you but the processes measured: the broker must be running already.

* **Throughput.** ``--events`` seeded ``--dataset`` events (default ``hyperplane-stationary``:
  8 numeric features, boolean label inline) are produced once to a one-partition topic; then,
  ``--repeats`` times and interleaved so that machine noise hits every case alike:
  (a) a raw aiokafka loop in a subprocess (consume, orjson-decode, orjson-encode a small output,
  produce it; the worker's producer settings: acks=all, 5 ms linger, 256 KB batches, no wait
  per record), (q) a Quix Streams app in a subprocess with the worker's model and detector
  (``StandardScaler | LogisticRegression``, ``predict_proba_one``, ADWIN(delta=0.01) on the 0/1
  error, ``learn_one`` in one ``sdf.apply``, a small JSON output through ``sdf.to_topic``; Quix's
  own defaults otherwise), (b) ``python -m driftline serve`` with a logistic regression
  (``model.name = linear``, every other setting at its default: detectors, guard, snapshots every
  10,000 events) per record, (c) the same worker *lean*: prediction and feature detectors and
  the guard off (ADWIN on the error stays, as in (q)), per record, (d) the default worker
  with ``engine.batch_size = --batch-size`` (``--batch-size 0`` skips it), and (e) the lean
  worker with that batch size (River's ``learn_many``: one mean gradient per batch, not the
  same model as learning one at a time; the accuracy of each case is in BENCHMARKS.md). Each reads the topic
  from its start. Events/s = events / (last output's log-append time - first output's): every
  output topic is stamped by the broker (``LogAppendTime``), so Quix keeping the input's
  timestamp on what it produces does not matter. Medians are quoted. Beside them, (r) the
  Quix app's River work alone (decode, predict, ADWIN, learn, encode) in the benchmark's own
  process, no Kafka (wall clock): the floor under any per-record app with this model.
* **Timeline** (``--timeline``). After each worker run, its outputs per 100 ms of log-append
  time: a worker that waits instead of computing shows windows with none (how the idle gaps of
  BENCHMARKS.md, "Idle gaps while reading a backlog", were found).
* **Profile** (``--profile PATH``). One more default-config worker run with ``py-spy record``
  attached (every thread, raw collapsed stacks written to PATH); the top functions by own time
  and by time inside them are printed. Needs ``py-spy`` (``.venv/bin/pip install py-spy``).
* **Latency.** A fresh per-record worker gets events at a fixed rate (half the per-record
  worker's median throughput, or ``--latency-rate``) for ``--latency-seconds`` after a warm-up.
  Latency = the prediction's log-append time on the broker - the moment the event was handed to
  the producer (wall clock; log-append times have millisecond resolution). ``--latency-repeats``
  runs, each with a fresh worker (the tail varies a lot from run to run: medians are quoted),
  each printed with the share of a core the worker's main thread and its other threads used
  while events were offered.
* **Memory.** A per-record worker processes ``--long`` events; its resident set size
  (``/proc/<pid>/status`` VmRSS) is sampled as it goes.

Every run gets its own topics and consumer group (deleted at the end), every subprocess is killed
in ``finally`` and every wait has a deadline. ``quixstreams`` is a benchmark-only dependency (the
``bench`` extra of pyproject.toml), never imported by the service.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_DIR))

import orjson  # noqa: E402

SNAPSHOT_KEY = secrets.token_hex(32)  # a fresh key per run (32 random bytes)
#: ``--dataset``: 8 numeric features (the figures of issue 8), ``sea-abrupt`` has 3.
DATASET = "hyperplane-stationary"
#: The Quix Streams release measured (``[project.optional-dependencies] bench``).
QUIX_VERSION = "3.28.1"
QUIX_INSTALL = (
    "    .venv/bin/pip install -e '.[bench]'\n"
    f"(or just the package: .venv/bin/pip install quixstreams=={QUIX_VERSION})"
)
#: The lean worker: the monitors off (prediction and feature detectors, guard); the error's
#: ADWIN, the policy, the fallback, the rolling metric and snapshots stay at their defaults.
LEAN_ENV = {
    "DRIFTLINE_DETECTORS__PREDICTION__KIND": "none",
    "DRIFTLINE_DETECTORS__FEATURES__KIND": "none",
    "DRIFTLINE_GUARD__ENABLED": "false",
}
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
#: Slowest rate we wait for before calling a run stuck (events/s), on top of the start timeout.
MIN_RATE = 500.0
LATENCY_WARMUP_S = 5.0
#: After each latency run, this many events at once: the same worker's CPU per event on a backlog.
BACKLOG_EVENTS = 20_000
#: The latency generator hands over what is due every this often (one batch each time).
PACE_S = 0.005
RSS_SAMPLE_S = 0.5


class BenchError(Exception):
    """A run that failed: printed as one line (plus the worker's log tail), exit status 1."""


# --------------------------------------------------------------------------- broker and topics


def broker_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return True
        except (OSError, ValueError):
            continue
    return False


@dataclass
class Topics:
    """Names made by this run; :meth:`delete` removes them all."""

    bootstrap: str
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    made: list[str] = field(default_factory=list)

    def name(self, what: str) -> str:
        return f"bench-{self.uid}-{what}"

    def create(self, names: list[str], config: dict[str, dict[str, str]] | None = None) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        config = config or {}
        self.made += names  # (before: a failure half-way must not leave any behind)
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench-live")
        try:
            admin.create_topics(
                [NewTopic(n, 1, 1, topic_configs=config.get(n, {})) for n in names],
                timeout_ms=30_000,
            )
        finally:
            admin.close()

    def delete(self) -> None:
        if not self.made:
            return
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench-live")
        try:
            admin.delete_topics(self.made, timeout_ms=30_000)
            self.made = []
        except Exception as exc:  # leave the run's result alone: say what is left behind
            print(f"(could not delete topics {', '.join(self.made)}: {exc!r})", file=sys.stderr)
        finally:
            admin.close()


#: Outputs stamped by the broker: their timestamps are when they were appended to the log.
LOG_APPEND = {"message.timestamp.type": "LogAppendTime"}


def end_offset(consumer: Any, topic: str) -> int:
    from kafka import TopicPartition

    tp = TopicPartition(topic, 0)
    return int(consumer.end_offsets([tp])[tp])


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120.0) -> list[Any]:
    """Every record of partition 0 of ``topic``, from its start to its end now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise BenchError(f"could not read {topic} to its end within {timeout_s:.0f} s")
            for batch in consumer.poll(timeout_ms=200, max_records=100_000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def first_and_last(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """(record count, first and last record's timestamp in ms) of partition 0 of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        stamps = []
        for offset in (0, end - 1):
            consumer.seek(tp, offset)
            deadline = time.monotonic() + 30
            while True:
                if time.monotonic() > deadline:
                    raise BenchError(f"no record at {topic} offset {offset} within 30 s")
                records = consumer.poll(timeout_ms=200, max_records=1).get(tp)
                if records:
                    if records[0].timestamp_type != 1:
                        raise BenchError(f"{topic} is not stamped with log-append times")
                    stamps.append(records[0].timestamp)
                    break
        return end, stamps[0], stamps[1]
    finally:
        consumer.close()


# --------------------------------------------------------------------------- producing events


def encoded_events(count: int) -> list[tuple[bytes, bytes]]:
    from driftline.offline.datasets import get_dataset

    return [
        (str(e["id"]).encode(), orjson.dumps(e)) for e in get_dataset(DATASET).events(limit=count)
    ]


async def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """As fast as the broker takes them (large batches); raises if any is not acknowledged."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=0) for key, value in records
        ]
        await producer.flush()
        for future in futures:
            future.result()  # raises the delivery error, if any
    finally:
        await producer.stop()


async def produce_paced(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes]],
    rate: float,
    warm: int,
) -> list[tuple[int, float]]:
    """Send ``records`` at ``rate`` events/s; return ``(offset, wall time handed to the producer)``
    of each one after the first ``warm``.

    Every PACE_S the records due by then go out in one batch (pre-encoded, linger 0, acks=1):
    the generator costs little CPU and adds as little delay of its own as it can.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=0)
    await producer.start()
    batches: list[tuple[asyncio.Future[Any], float, int]] = []  # (future, handed over, count)
    # No garbage collection while sending: with the records in memory, a full collection here
    # took 60-100 ms, and a batch handed over just before it left that much later: the
    # generator's own pause, measured as the worker's latency.
    gc.collect()
    gc.disable()
    try:
        started = time.monotonic()
        total, done = len(records), 0
        while done < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            if due > done:
                batch = producer.create_batch()
                for key, value in records[done:due]:
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        break  # full: the rest goes in the next one
                count = batch.record_count()
                batch.close()
                at = time.time()
                batches.append((await producer.send_batch(batch, topic, partition=0), at, count))
                done += count
            await asyncio.sleep(PACE_S)
        await producer.flush()
        stamped = []
        for future, at, count in batches:
            base = future.result().offset
            stamped += [(base + i, at) for i in range(count)]
        return stamped[warm:]
    finally:
        gc.enable()
        await producer.stop()


def cycle_events(count: int) -> Iterator[tuple[bytes, bytes]]:
    """Seeded events with ever-increasing ids (the dataset repeated with fresh seeds)."""
    from driftline.offline.datasets import get_dataset

    dataset = get_dataset(DATASET)
    next_id = 0
    seed = 42
    while True:
        for event in dataset.events(limit=count, seed=seed):
            event["id"] = next_id
            yield str(next_id).encode(), orjson.dumps(event)
            next_id += 1
        seed += 1


# --------------------------------------------------------------------------- the processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid`` so far ({} where ``/proc`` is not
    there to read)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a thread that ended meanwhile
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


@dataclass
class Process:
    """A measured subprocess with its log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    web_port: int | None = None
    #: Wall clock when it was spawned.
    spawned: float = field(default_factory=time.time)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"{what} exited ({self.proc.returncode}) early; end of {self.log}:\n{self.tail()}"
            )

    def stop(self) -> None:
        """SIGINT (a worker takes its final snapshot), SIGKILL if it does not exit in time."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def started(
    argv: list[str], env: dict[str, str], log: Path, web_port: int | None = None
) -> Iterator[Process]:
    spawned = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=REPO_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = Process(proc, log, web_port, spawned)
    try:
        yield process
    finally:
        process.kill()


def worker_topics(topics: Topics, run: str, events_topic: str) -> dict[str, str]:
    names = {
        what: topics.name(f"{run}-{what}")
        for what in ("labels", "predictions", "alerts", "snapshots", "dead-letter")
    }
    return {"events": events_topic, **names}


def start_worker(
    bootstrap: str,
    topics: Topics,
    names: dict[str, str],
    batch_size: int,
    work_dir: Path,
    run: str,
    extra_env: dict[str, str] | None = None,
) -> Any:
    """``python -m driftline serve`` on ``names`` (topics made here: predictions log-append time);
    ``extra_env`` adds ``DRIFTLINE_`` settings (the lean case)."""
    from driftline.live.topics import topic_specs
    from driftline.settings import load_settings

    web, metrics = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")},
        "DRIFTLINE_BOOTSTRAP": bootstrap,
        "DRIFTLINE_SNAPSHOT_KEY": SNAPSHOT_KEY,
        "DRIFTLINE_SERVICE__APP_ID": topics.name(run),
        "DRIFTLINE_SERVICE__DATA_DIR": str(work_dir / f"{run}-data"),
        "DRIFTLINE_SERVICE__WEB_PORT": str(web),
        "DRIFTLINE_SERVICE__METRICS_PORT": str(metrics),
        "DRIFTLINE_KAFKA__PARTITIONS": "1",
        "DRIFTLINE_MODEL__NAME": "linear",
        "DRIFTLINE_ENGINE__BATCH_SIZE": str(batch_size),
        **{f"DRIFTLINE_KAFKA__TOPICS__{k.upper().replace('-', '_')}": v for k, v in names.items()},
        **(extra_env or {}),
        "PYTHONUNBUFFERED": "1",
    }
    settings = load_settings(environ=env)
    specs = [s for s in topic_specs(settings) if s.name != names["events"]]
    topics.create(
        [s.name for s in specs],
        {
            s.name: {**s.config, **(LOG_APPEND if s.name == names["predictions"] else {})}
            for s in specs
        },
    )
    return started(
        [sys.executable, "-m", "driftline", "serve", "--loglevel", "warning"],
        env,
        work_dir / f"{run}.log",
        web,
    )


def wait_for_outputs(
    bootstrap: str,
    topic: str,
    count: int,
    process: Process,
    what: str,
    on_sample: Callable[[int], None] | None = None,
) -> None:
    """Until ``topic`` holds ``count`` records (the process must stay up meanwhile)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    allowed = START_TIMEOUT_S + count / MIN_RATE
    deadline = time.monotonic() + allowed
    try:
        while True:
            done = end_offset(consumer, topic)
            if on_sample is not None:
                on_sample(done)
            if done >= count:
                return
            process.check_alive(what)
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{what}: {done} of {count} outputs after {allowed:.0f} s; end of "
                    f"{process.log}:\n{process.tail()}"
                )
            time.sleep(RSS_SAMPLE_S if on_sample else 0.2)
    finally:
        consumer.close()


def wait_assigned(process: Process, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        process.check_alive("the worker")
        try:
            url = f"http://127.0.0.1:{process.web_port}/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                if orjson.loads(answer.read())["assigned"] == [0]:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"the worker did not own partition 0 within {timeout_s:.0f} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------- the measurements


def rate_of(bootstrap: str, topic: str, count: int) -> float:
    return rates_of(bootstrap, topic, count, None)[0]


def rates_of(bootstrap: str, topic: str, count: int, spawned: float | None) -> tuple[float, float]:
    """Events/s between the first and the last output's log-append time, and (with ``spawned``)
    from the process's spawn to the last output: start-up (imports, group join) included."""
    total, first, last = first_and_last(bootstrap, topic)
    if total != count:
        raise BenchError(f"{topic}: {total} outputs for {count} events")
    whole = count / max(last / 1000 - spawned, 1e-3) if spawned is not None else float("nan")
    return count / max(last - first, 1) * 1000, whole


#: ``--timeline``: outputs are counted per window of this many ms.
TIMELINE_MS = 100


def timeline(bootstrap: str, topic: str) -> str:
    """Outputs per TIMELINE_MS window of their log-append times, first to last: a worker that
    sits idle (waiting, not computing) shows windows with none."""
    stamps = [r.timestamp for r in read_topic(bootstrap, topic)]
    if not stamps:
        return "no outputs"
    first = min(stamps)
    counts = [0] * ((max(stamps) - first) // TIMELINE_MS + 1)
    for stamp in stamps:
        counts[(stamp - first) // TIMELINE_MS] += 1
    idle = sum(1 for c in counts if c == 0)
    return f"{idle} of {len(counts)} windows with no output; per {TIMELINE_MS} ms: " + " ".join(
        map(str, counts)
    )


def raw_run(
    bootstrap: str, topics: Topics, source: str, count: int, work_dir: Path, n: int
) -> tuple[float, float]:
    out = topics.name(f"raw{n}-out")
    topics.create([out], {out: LOG_APPEND})
    argv = [sys.executable, str(Path(__file__).resolve()), "--raw-child"]
    argv += ["--bootstrap", bootstrap, "--child-topics", source, out, "--events", str(count)]
    with started(argv, dict(os.environ), work_dir / f"raw{n}.log") as process:
        wait_for_outputs(bootstrap, out, count, process, "the raw loop")
        process.proc.wait(timeout=STOP_TIMEOUT_S)
    return rates_of(bootstrap, out, count, process.spawned)


def quix_run(
    bootstrap: str, topics: Topics, source: str, count: int, work_dir: Path, n: int
) -> tuple[float, float]:
    out = topics.name(f"quix{n}-out")
    topics.create([out], {out: LOG_APPEND})
    argv = [sys.executable, str(Path(__file__).resolve()), "--quix-child"]
    argv += ["--bootstrap", bootstrap, "--child-topics", source, out, "--events", str(count)]
    argv += ["--child-group", topics.name(f"quix{n}"), "--child-dir", str(work_dir / f"quix{n}")]
    with started(argv, dict(os.environ), work_dir / f"quix{n}.log") as process:
        wait_for_outputs(bootstrap, out, count, process, "the Quix Streams app")
        process.proc.wait(timeout=STOP_TIMEOUT_S)
        if process.proc.returncode != 0:
            raise BenchError(
                f"the Quix Streams app failed; end of {process.log}:\n{process.tail()}"
            )
    return rates_of(bootstrap, out, count, process.spawned)


def worker_run(
    bootstrap: str,
    topics: Topics,
    source: str,
    count: int,
    batch: int,
    work_dir: Path,
    run: str,
    extra_env: dict[str, str] | None = None,
    profile: Path | None = None,
) -> tuple[float, float]:
    """One worker from the topic's start to ``count`` predictions; with ``profile``, py-spy
    samples it (every thread) from the moment it owns the partition (imports and start-up are
    not sampled) until it is stopped."""
    names = worker_topics(topics, run, source)
    with start_worker(bootstrap, topics, names, batch, work_dir, run, extra_env) as process:
        spy = None
        if profile is not None:
            wait_assigned(process)
            argv = [PY_SPY, "record", "--pid", str(process.proc.pid), "--rate", "250"]
            argv += ["--format", "raw", "--output", str(profile), "--nonblocking", "--threads"]
            with open(work_dir / f"{run}-py-spy.log", "wb") as log:
                spy = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
        try:
            wait_for_outputs(bootstrap, names["predictions"], count, process, "the worker")
        finally:
            if spy is not None:  # py-spy writes its file when the process it samples ends
                process.stop()
                try:
                    spy.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=10)
        process.stop()
    return rates_of(bootstrap, names["predictions"], count, process.spawned)


PY_SPY = str(Path(sys.executable).with_name("py-spy"))


#: Where a sampled frame's own time belongs, by the first fragment of its file path found.
AREAS = (
    ("river/drift", "River drift detectors"),
    ("river/base/drift", "River drift detectors"),
    ("river/", "River model (scaler, linear model, pipeline, metrics)"),
    ("learners/", "driftline engine (learners/)"),
    ("detectors/", "driftline monitors (detectors/)"),
    ("stream/", "driftline worker (stream/)"),
    ("faust/", "Faust / mode"),
    ("mode/", "Faust / mode"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "kafka-python"),
    ("prometheus_client/", "prometheus_client"),
    ("asyncio/", "asyncio, selectors, threading"),
    ("selectors.py", "asyncio, selectors, threading"),
    ("threading.py", "asyncio, selectors, threading"),
    ("concurrent/", "asyncio, selectors, threading"),
)


def area_of(frame: str) -> str:
    for fragment, area in AREAS:
        if f"({fragment}" in frame or f"/{fragment}" in frame:
            return area
    return "other (stdlib, C extensions' callers)"


def summarize_profile(path: Path, top: int = 25) -> str:
    """py-spy's raw (collapsed) stacks of every thread, as shares of all samples: per thread, per
    area (own time of the innermost frame), top functions by own time and by time inside them.

    A thread counts only while it is not idle (py-spy's default): the shares are of the CPU the
    worker's Python threads used, not of wall time.
    """
    own: dict[str, int] = {}
    inside: dict[str, int] = {}
    threads: dict[str, int] = {}
    areas: dict[str, int] = {}
    total = 0
    for line in path.read_text().split("\n"):  # not splitlines: a frame may hold \x1c
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        if not frames:
            continue
        total += count
        threads[thread] = threads.get(thread, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        area = area_of(frames[-1])
        areas[area] = areas.get(area, 0) + count
        for frame in set(frames):
            inside[frame] = inside.get(frame, 0) + count
    if not total:
        return "(no samples)"

    def listing(counts: dict[str, int], limit: int) -> list[str]:
        ordered = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [f"  {c / total:6.1%}  {name}" for name, c in ordered]

    lines = [f"{total:,} samples (250/s, idle threads not counted); by thread:"]
    lines += listing(threads, 10)
    lines += ["by area (own time):", *listing(areas, len(AREAS))]
    lines += [f"top {top} by own time:", *listing(own, top)]
    lines += [f"top {top} by time inside (own + callees):", *listing(inside, top)]
    return "\n".join(lines)


def latency_run(
    bootstrap: str, topics: Topics, rate: float, seconds: float, work_dir: Path, run: str
) -> dict[str, float]:
    """One latency run on topics of its own (``run`` names them)."""
    source = topics.name(f"{run}-events")
    topics.create([source])
    warm = int(rate * LATENCY_WARMUP_S)
    records = list(itertools.islice(cycle_events(50_000), warm + int(rate * seconds)))
    names = worker_topics(topics, run, source)
    with start_worker(bootstrap, topics, names, 1, work_dir, run) as process:
        wait_assigned(process)
        pid = process.proc.pid
        cpu_before, wall_before = thread_cpu_s(pid), time.monotonic()
        # The warm-up is not measured: the model, detectors and connections get going.
        sent = asyncio.run(produce_paced(bootstrap, source, records, rate, warm))
        cpu_after, wall = thread_cpu_s(pid), time.monotonic() - wall_before
        wait_for_outputs(bootstrap, names["predictions"], len(records), process, "the worker")
        cpu_paced = thread_cpu_s(pid)
        # The same worker on a backlog: the main thread's CPU per event there, beside its CPU per
        # paced event (BENCHMARKS.md, "Paced work costs more per event").
        backlog = list(itertools.islice(cycle_events(50_000), BACKLOG_EVENTS))
        asyncio.run(produce_all(bootstrap, source, backlog))
        total = len(records) + len(backlog)
        wait_for_outputs(bootstrap, names["predictions"], total, process, "the worker")
        cpu_backlog = thread_cpu_s(pid)
        process.stop()
    appended = {}
    for record in read_topic(bootstrap, names["predictions"]):
        appended[orjson.loads(record.value)["offset"]] = record.timestamp
    latencies = sorted(appended[offset] - at * 1000 for offset, at in sent)
    # The share of a core each thread used while events were offered (the main thread's id is
    # the process's): the tail follows how busy the main thread is, which the same work on
    # the same events is not always equally (BENCHMARKS.md, "The latency tail").
    used = {tid: cpu_after[tid] - cpu_before.get(tid, 0.0) for tid in cpu_after}
    return {
        "count": len(latencies),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": latencies[-1],
        "main_cpu": used.pop(pid, math.nan) / wall,
        "other_cpu": sum(used.values()) / wall if used else math.nan,
        "main_us_paced": main_us(cpu_before, cpu_paced, pid, len(records)),
        "main_us_backlog": main_us(cpu_paced, cpu_backlog, pid, len(backlog)),
    }


def main_us(before: dict[int, float], after: dict[int, float], pid: int, events: int) -> float:
    """The main thread's CPU per event between two :func:`thread_cpu_s` readings (us)."""
    if pid not in after or not events:
        return math.nan
    return (after[pid] - before.get(pid, 0.0)) / events * 1e6


def percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def memory_run(bootstrap: str, topics: Topics, count: int, work_dir: Path) -> dict[str, Any]:
    source = topics.name("long-events")
    topics.create([source])
    asyncio.run(produce_all(bootstrap, source, list(itertools.islice(cycle_events(50_000), count))))
    names = worker_topics(topics, "long", source)
    samples: list[tuple[int, float]] = []
    with start_worker(bootstrap, topics, names, 1, work_dir, "long") as process:

        def sample(done: int) -> None:
            mib = rss_mib(process.proc.pid)
            if mib is not None and done > 0:
                samples.append((done, mib))

        wait_for_outputs(bootstrap, names["predictions"], count, process, "the worker", sample)
        process.stop()
    if not samples:
        raise BenchError("no memory sample: the worker produced its outputs too quickly")

    def at(fraction: float) -> float:
        return next(mib for done, mib in samples if done >= fraction * count)

    return {
        "rate": rate_of(bootstrap, names["predictions"], count),
        "at": [(f, at(f)) for f in (0.1, 0.25, 0.5, 0.75, 1.0)],
        "peak": max(mib for _, mib in samples),
        "growth": samples[-1][1] - at(0.1),
    }


# --------------------------------------------------------------------------- the raw loop


async def raw_loop(bootstrap: str, source: str, out: str, count: int) -> int:
    """Consume, decode, encode a small output, produce it: what any worker must do at least."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    from driftline.live.app import PRODUCER_BATCH_BYTES, PRODUCER_LINGER_S

    # The worker's producer settings (acks=all, linger, batch size).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=round(PRODUCER_LINGER_S * 1000),
        max_batch_size=PRODUCER_BATCH_BYTES,
    )
    await consumer.start()
    await producer.start()
    failed = 0

    def check(future: asyncio.Future[Any]) -> None:
        nonlocal failed
        if future.cancelled() or future.exception() is not None:
            failed += 1

    try:
        done = 0
        deadline = time.monotonic() + START_TIMEOUT_S + count / MIN_RATE
        while done < count:
            if time.monotonic() > deadline:
                raise BenchError(f"raw loop: {done} of {count} events before the deadline")
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for messages in batches.values():
                for message in messages:
                    event = orjson.loads(message.value)
                    value = orjson.dumps(
                        {
                            "id": event["id"],
                            "prediction": event.get("y"),
                            "partition": message.partition,
                            "offset": message.offset,
                        }
                    )
                    future = await producer.send(out, value, key=message.key)
                    future.add_done_callback(check)
                done += len(messages)
        await producer.flush()
        return failed
    finally:
        await producer.stop()
        await consumer.stop()


# --------------------------------------------------------------------------- the Quix Streams app


def quix_missing() -> str | None:
    """Why the Quix Streams case cannot run, or ``None``."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("quixstreams")
    except importlib.metadata.PackageNotFoundError:
        return (
            "bench_live: the Quix Streams case needs quixstreams, a benchmark-only dependency "
            "that is not installed. Install it with\n"
            f"{QUIX_INSTALL}\n"
            "or skip the case with --no-quix."
        )
    if version != QUIX_VERSION:
        print(
            f"(quixstreams {version} installed; the figures in BENCHMARKS.md are of {QUIX_VERSION})",
            file=sys.stderr,
        )
    return None


class RiverStep:
    """What the Quix app (q) does with an event, Kafka aside: the worker's model and error
    detector, predict first, then learn; a small output record."""

    def __init__(self) -> None:
        from river import drift, linear_model, preprocessing

        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        self.detector = drift.ADWIN(delta=0.01)  # the worker's default for the error signal
        self.drifts = 0

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        x, y = event["x"], event.get("y")
        proba = self.model.predict_proba_one(x)
        prediction = max(proba, key=proba.__getitem__) if proba else None
        if y is not None:
            self.detector.update(0.0 if prediction == y else 1.0)
            if self.detector.drift_detected:
                self.drifts += 1
            self.model.learn_one(x, y)
        return {
            "id": event["id"],
            "prediction": prediction,
            "confidence": proba.get(prediction) if proba else None,
        }


def river_alone(values: list[bytes], repeats: int) -> float:
    """Events/s of :class:`RiverStep` on JSON ``values`` in this process (decode, step, encode;
    no Kafka), median of ``repeats`` runs: the floor under any per-record app with this model.
    Wall clock, as the cases beside it: a busy machine slows both alike."""
    rates = []
    for _ in range(repeats):
        step, loads, dumps = RiverStep(), orjson.loads, orjson.dumps
        started = time.perf_counter()
        for value in values:
            dumps(step(loads(value)))
        rates.append(len(values) / (time.perf_counter() - started))
    return statistics.median(rates)


def quix_app(bootstrap: str, source: str, out: str, count: int, group: str, state_dir: str) -> int:
    """What a user of Quix Streams would write: the worker's model and error detector in one
    ``sdf.apply``, the output to a topic; Quix's defaults otherwise. Stops after ``count``
    outputs (or 30 s without input)."""
    from quixstreams import Application, message_context

    step = RiverStep()

    def learn(event: dict[str, Any]) -> dict[str, Any]:
        output = step(event)
        context = message_context()
        output.update(partition=context.partition, offset=context.offset)
        return output

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    sdf = app.dataframe(app.topic(source, value_deserializer="json"))
    sdf = sdf.apply(learn)
    sdf.to_topic(app.topic(out, value_serializer="json"))
    app.run(count=count, timeout=30.0, collect=False)
    print(f"quix app: {count} events, {step.drifts} ADWIN drifts", flush=True)
    return 0


# --------------------------------------------------------------------------- main


def main() -> int:
    global DATASET
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("DRIFTLINE_BOOTSTRAP", "127.0.0.1:9092"),
        help="a running broker (default $DRIFTLINE_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument("--events", type=int, help="events per throughput run (50000)")
    parser.add_argument("--repeats", type=int, help="throughput runs per case (3)")
    parser.add_argument(
        "--dataset",
        default=DATASET,
        help=f"seeded dataset of driftline.offline.datasets ({DATASET})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="micro-batch size (1000; 0: skip the case)"
    )
    parser.add_argument(
        "--no-quix", action="store_true", help="skip the Quix Streams case (no quixstreams needed)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="one more default-config worker run under py-spy; raw collapsed stacks to this file",
    )
    parser.add_argument("--latency-seconds", type=float, help="measured latency period (30)")
    parser.add_argument(
        "--latency-repeats",
        type=int,
        help="latency runs, each with a fresh worker; medians are quoted (3)",
    )
    parser.add_argument(
        "--latency-rate", type=float, default=0.0, help="offered events/s (default: half the max)"
    )
    parser.add_argument("--long", type=int, help="events of the memory run (300000; 0: skip)")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help=f"after each worker run, its outputs per {TIMELINE_MS} ms (idle gaps show as 0)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="defaults for a smoke test: 20k events, 1 repeat, 1 latency run of 10 s, 60k memory run",
    )
    parser.add_argument("--raw-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quix-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-topics", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-group", help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    DATASET = args.dataset

    if args.raw_child or args.quix_child:
        source, out = args.child_topics
        if args.raw_child:
            failed = asyncio.run(raw_loop(args.bootstrap, source, out, args.events))
            return 1 if failed else 0
        return quix_app(args.bootstrap, source, out, args.events, args.child_group, args.child_dir)
    defaults = (20_000, 1, 10.0, 1, 60_000) if args.quick else (50_000, 3, 30.0, 3, 300_000)
    for name, default in zip(
        ("events", "repeats", "latency_seconds", "latency_repeats", "long"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.latency_repeats < 1:
        parser.error("--latency-repeats must be at least 1 (--latency-seconds 0 skips latency)")
    if not args.no_quix and (why := quix_missing()):
        print(why, file=sys.stderr)
        return 2
    if args.profile is not None and not Path(PY_SPY).exists():
        print(
            "bench_live: --profile needs py-spy beside this Python: .venv/bin/pip install py-spy",
            file=sys.stderr,
        )
        return 2
    if not broker_answers(args.bootstrap):
        print(
            f"bench_live: no Kafka broker answers at {args.bootstrap}. Start one with\n"
            "    KAFKA_PORT=9092 scripts/kafka-local start      (stop it: scripts/kafka-local stop)\n"
            "and pass its address as --bootstrap HOST:PORT.",
            file=sys.stderr,
        )
        return 2
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench_live: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap
    print(f"command: {shlex.join(['python', 'scripts/bench_live.py', *sys.argv[1:]])}")
    print(
        f"{args.events:,} {DATASET} events, 1 partition, logistic regression (model.name=linear, "
        f"other settings default), {args.repeats} repeat(s), medians; {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, broker {bootstrap}",
        flush=True,
    )
    topics = Topics(bootstrap)
    rates: dict[str, list[float]] = {}
    whole: dict[str, list[float]] = {}  # spawn to the last output
    raw_case, quix_case = "(a) raw aiokafka loop", f"(q) Quix Streams {QUIX_VERSION} app"
    default_case, lean_case = "(b) worker, default config", "(c) worker, lean (monitors off)"
    batch_case = f"(d) worker, default, micro-batch {args.batch_size}"
    lean_batch_case = f"(e) worker, lean, micro-batch {args.batch_size}"
    cases = [raw_case, *([] if args.no_quix else [quix_case]), default_case, lean_case]
    cases += [batch_case, lean_batch_case] if args.batch_size > 0 else []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        work_dir = Path(tmp)
        try:
            source = topics.name("events")
            topics.create([source])
            produced = encoded_events(args.events)
            asyncio.run(produce_all(bootstrap, source, produced))

            # Each worker case: (run name, micro-batch size, extra settings); the run name
            # with the repeat's number names its topics (worker_topics).
            workers: dict[str, tuple[str, int, dict[str, str] | None]] = {
                default_case: ("rec", 1, None),
                lean_case: ("lean", 1, LEAN_ENV),
                batch_case: ("mb", args.batch_size, None),
                lean_batch_case: ("leanmb", args.batch_size, LEAN_ENV),
            }

            def one_run(case: str, n: int) -> tuple[float, float]:
                count = args.events
                if case == raw_case:
                    return raw_run(bootstrap, topics, source, count, work_dir, n)
                if case == quix_case:
                    return quix_run(bootstrap, topics, source, count, work_dir, n)
                name, batch, env = workers[case]
                result = worker_run(
                    bootstrap, topics, source, count, batch, work_dir, f"{name}{n}", env
                )
                if args.timeline:
                    topic = worker_topics(topics, f"{name}{n}", source)["predictions"]
                    print(f"    {case}, repeat {n + 1}: {timeline(bootstrap, topic)}", flush=True)
                return result

            for n in range(args.repeats):
                # Rotate the order: no case always runs first (or right after the busiest).
                order = cases[n % len(cases) :] + cases[: n % len(cases)]
                results = {case: one_run(case, n) for case in order}
                for case in cases:
                    rates.setdefault(case, []).append(results[case][0])
                    whole.setdefault(case, []).append(results[case][1])
                print(
                    f"  repeat {n + 1}: "
                    + ", ".join(f"{case.split()[0]} {results[case][0]:,.0f}" for case in order)
                    + " events/s",
                    flush=True,
                )
            median = {case: statistics.median(values) for case, values in rates.items()}
            raw = median[raw_case]
            quix = median.get(quix_case)
            print(
                f"\n{'case':<40} {'events/s':>9}  {'vs (a)':>6}  {'vs (q)':>6}  "
                f"{'incl. start-up':>14}   runs"
            )
            for case in cases:
                runs_text = " ".join(f"{r:,.0f}" for r in rates[case])
                vs_quix = f"{median[case] / quix:>5.2f}x" if quix else "     -"
                print(
                    f"{case:<40} {median[case]:>9,.0f}  {median[case] / raw:>5.2f}x  {vs_quix}  "
                    f"{statistics.median(whole[case]):>14,.0f}   {runs_text}"
                )
            print(
                "(events/s: first to last output's log-append time; incl. start-up: spawn of the "
                "process to the last output)"
            )
            print(f"default worker / raw loop: {median[default_case] / raw:.2f}x (target >= 0.6x)")
            if quix:
                print(
                    f"default worker / Quix app: {median[default_case] / quix:.2f}x "
                    f"(target >= 2x); lean worker / Quix app: {median[lean_case] / quix:.2f}x"
                )
                # Beside the Quix app only: it is the floor under that comparison.
                river_rate = river_alone([value for _, value in produced], max(3, args.repeats))
                print(
                    f"(r) the Quix app's River work alone, in this process, no Kafka: "
                    f"{river_rate:,.0f} events/s ({1e6 / river_rate:.1f} us per event); 2x the "
                    f"Quix app is {2 * quix:,.0f} events/s ({1e6 / (2 * quix):.1f} us per event "
                    f"for everything): {2 * quix / river_rate:.2f}x the River work alone"
                )
                floor_us = 1e6 / raw + 1e6 / river_rate
                print(
                    f"    the raw loop's Kafka work (a) + the River work (r): {floor_us:.1f} us per "
                    f"event, {floor_us * 2 * quix / 1e6:.2f}x the time 2x the Quix app allows"
                )

            if args.profile is not None:
                print(f"\nprofile: a default-config worker under py-spy -> {args.profile}")
                rate, _ = worker_run(
                    bootstrap,
                    topics,
                    source,
                    args.events,
                    1,
                    work_dir,
                    "prof",
                    profile=args.profile,
                )
                print(f"  {rate:,.0f} events/s while sampled")
                print(summarize_profile(args.profile), flush=True)

            rate = args.latency_rate or median[default_case] / 2
            if args.latency_seconds > 0:
                print(
                    f"\nlatency, per-record worker, {rate:,.0f} events/s offered for "
                    f"{args.latency_seconds:g} s (after {LATENCY_WARMUP_S:g} s warm-up) ...",
                    flush=True,
                )
                runs = []
                for repeat in range(1, args.latency_repeats + 1):
                    lat = latency_run(
                        bootstrap, topics, rate, args.latency_seconds, work_dir, f"latency{repeat}"
                    )
                    runs.append(lat)
                    print(
                        f"  run {repeat}: {lat['count']:,.0f} events: p50 {lat['p50']:.1f} ms, "
                        f"p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms; worker CPU: main "
                        f"thread {lat['main_cpu']:.0%} of a core, other threads "
                        f"{lat['other_cpu']:.0%}; main thread per event: "
                        f"{lat['main_us_paced']:.0f} us paced, {lat['main_us_backlog']:.0f} us "
                        f"on a backlog ({lat['main_us_paced'] / lat['main_us_backlog']:.2f}x)",
                        flush=True,
                    )
                p50 = statistics.median(r["p50"] for r in runs)
                p99 = statistics.median(r["p99"] for r in runs)
                print(
                    f"  median of {len(runs)}: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                    "(target p99 <= 20 ms)"
                )
                paced = statistics.median(r["main_us_paced"] for r in runs)
                backlog = statistics.median(r["main_us_backlog"] for r in runs)
                print(
                    f"  main thread per event, medians: {paced:.0f} us paced, {backlog:.0f} us on a "
                    f"backlog ({paced / backlog:.2f}x): at {rate:,.0f} events/s the main thread "
                    f"needs {paced * rate / 1e6:.0%} of a core, where the backlog's cost per "
                    f"event would need {backlog * rate / 1e6:.0%}"
                )
            if args.long > 0:
                print(f"\nmemory, per-record worker, {args.long:,} events ...", flush=True)
                mem = memory_run(bootstrap, topics, args.long, work_dir)
                points = "  ".join(f"{f:.0%}: {mib:.1f}" for f, mib in mem["at"])
                print(
                    f"  RSS MiB  {points}  (peak {mem['peak']:.1f})\n"
                    f"  growth after the first 10%: {mem['growth']:+.1f} MiB; "
                    f"{mem['rate']:,.0f} events/s"
                )
        finally:
            topics.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
