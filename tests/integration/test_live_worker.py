"""``driftline serve`` on the real broker: outputs, live equals backtest, crash recovery, refused
snapshots, rebalance, late labels across a restart.

Every test gets its own topics and consumer group, runs the worker as a subprocess
(``python -m driftline serve`` with ``DRIFTLINE_*`` overrides, as a user would) and kills whatever it
started in ``finally``. The expected outputs come from the very same engine run offline over the
records as they sit in each partition, so "exactly once" is checked record by record.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from driftline.learners.engine import Engine
from driftline.learners.snapshot import read_header, sign_snapshot
from driftline.live.snapshot_records import Assembler, snapshot_key
from driftline.live.topics import ensure_topics
from driftline.offline.backtest import run_backtest
from driftline.offline.datasets import get_dataset
from driftline.offline.sources import open_source
from driftline.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REPO_DIR = Path(__file__).resolve().parents[2]
SNAPSHOT_KEY = "9d4f1b7e2a6c3058e1b9f4a7c2d6e0835b7a1f4c9e2d6b8037a5c1e9f4b2d60a"
START_TIMEOUT_S = 60
OUTPUT_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
CORRUPT = [b"{not json", b'{"id": "c-1", "x": "not a dict"}', b'{"x": {"x1": 1.0}}']


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_broker(tmp_path: Path) -> Callable[[str], str]:
    """``broker("start" | "stop")``: a broker of the test's own (on free ports, in ``tmp_path``)
    that it may stop, unlike the shared one; returns the last line kafka-local printed."""
    kafka_local = REPO_DIR / "scripts" / "kafka-local"
    broker_env = {
        **os.environ,
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_DATA_DIR": str(tmp_path / "broker"),
    }

    def broker(command: str) -> str:
        done = subprocess.run(
            [str(kafka_local), command],
            env=broker_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"kafka-local {command} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    return broker


def sea_events(limit: int, start: int = 0, labels: bool = True) -> list[dict[str, Any]]:
    events = list(get_dataset("sea-abrupt").events(limit=start + limit))[start:]
    if not labels:
        for event in events:
            event.pop("y")
    return events


class Live:
    """Topics, settings and worker processes of one test."""

    def __init__(self, bootstrap: str, tmp_path: Path, partitions: int, **overrides: str) -> None:
        uid = uuid.uuid4().hex[:10]
        self.tmp_path = tmp_path
        self.app_id = f"it-live-{uid}"
        self.base_env = {
            "DRIFTLINE_BOOTSTRAP": bootstrap,
            "DRIFTLINE_SNAPSHOT_KEY": SNAPSHOT_KEY,
            "DRIFTLINE_SERVICE__APP_ID": self.app_id,
            "DRIFTLINE_SERVICE__DATA_DIR": str(tmp_path / "data"),
            "DRIFTLINE_KAFKA__PARTITIONS": str(partitions),
            **{
                f"DRIFTLINE_KAFKA__TOPICS__{name.upper()}": f"{uid}-{name}"
                for name in ("events", "labels", "predictions", "alerts", "snapshots")
            },
            "DRIFTLINE_KAFKA__TOPICS__DEAD_LETTER": f"{uid}-dead-letter",
            **overrides,
        }
        self.settings: Settings = load_settings(environ=self.base_env)
        self.topics = self.settings.kafka.topics
        self.bootstrap = bootstrap
        self.procs: list[tuple[subprocess.Popen[bytes], Path, int, int]] = []
        self.readers: list[TopicReader] = []
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        ensure_topics(self.settings)

    # ------------------------------------------------------------------ workers

    def start(self, name: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        web, metrics = _free_port(), _free_port()
        log_path = self.tmp_path / f"{name}-{len(self.procs)}.log"
        full_env = {
            **os.environ,
            **self.base_env,
            "DRIFTLINE_SERVICE__WEB_PORT": str(web),
            "DRIFTLINE_SERVICE__METRICS_PORT": str(metrics),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "driftline", "serve"],
                cwd=REPO_DIR,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log_path, web, metrics))
        return proc

    def _entry(self, proc: subprocess.Popen[bytes]) -> tuple[Path, int, int]:
        for p, log_path, web, metrics in self.procs:
            if p is proc:
                return log_path, web, metrics
        raise KeyError(proc)

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self._entry(proc)[0].read_text(errors="replace")

    def health(self, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
        try:
            port = self._entry(proc)[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                return orjson.loads(answer.read())
        except OSError:
            return None

    def metrics(self, proc: subprocess.Popen[bytes]) -> str:
        port = self._entry(proc)[2]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return answer.read().decode()

    def wait_assigned(self, proc: subprocess.Popen[bytes], partitions: set[int]) -> None:
        def assigned() -> bool:
            status = self.health(proc)
            return status is not None and set(status["assigned"]) == partitions

        self.wait(assigned, START_TIMEOUT_S, f"worker owning partitions {partitions}", proc)

    def wait(
        self,
        condition: Callable[[], bool],
        timeout: float,
        what: str,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if proc is not None and proc.poll() is not None:
                pytest.fail(
                    f"the worker exited ({proc.returncode}) waiting for {what}:\n"
                    + self.log(proc)[-4000:]
                )
            if time.monotonic() > deadline:
                tail = self.log(proc)[-4000:] if proc is not None else ""
                pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tail}")
            time.sleep(0.05)

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """Ctrl-C (SIGINT): the worker takes its final snapshots and exits."""
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail("the worker did not stop within 30 s of SIGINT:\n" + self.log(proc)[-4000:])

    def close(self) -> None:
        for proc, _, _, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for reader in self.readers:
            reader.close()
        self.producer.close(timeout=10)

    # ------------------------------------------------------------------ records

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> list[Any]:
        futures = [self.producer.send(topic, key=key, value=value) for key, value in records]
        self.producer.flush(timeout=30)
        return [future.get(timeout=30) for future in futures]

    def produce_events(
        self, events: list[dict[str, Any]], corrupt: Sequence[bytes] = ()
    ) -> list[Any]:
        records = [(str(e["id"]).encode(), orjson.dumps(e)) for e in events]
        records += [(f"corrupt-{i}".encode(), raw) for i, raw in enumerate(corrupt)]
        return self.produce(self.topics.events, records)

    def reader(self, topic: str) -> TopicReader:
        reader = TopicReader(self.bootstrap, topic)
        self.readers.append(reader)
        return reader


class TopicReader:
    """Every record of a topic from the beginning; :meth:`poll` reads what arrived since."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        parts = self.consumer.partitions_for_topic(topic) or set()
        self.tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)
        self.records: list[Any] = []
        self.closed = False

    def poll(self) -> list[Any]:
        for batch in self.consumer.poll(timeout_ms=100).values():
            self.records.extend(batch)
        return self.records

    def read_to_end(self, timeout: float = 30) -> list[Any]:
        end = self.consumer.end_offsets(self.tps)
        deadline = time.monotonic() + timeout
        while any(self.consumer.position(tp) < end[tp] for tp in self.tps):
            assert time.monotonic() < deadline, "could not read the topic to its end"
            self.poll()
        return self.records

    def close(self) -> None:
        if not self.closed:
            self.consumer.close()
            self.closed = True


@pytest.fixture
def live_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """``live_factory(partitions, **DRIFTLINE_overrides)``; everything it made is closed after."""
    made: list[Live] = []

    def make(partitions: int = 1, **overrides: str) -> Live:
        made.append(Live(kafka_bootstrap, tmp_path, partitions, **overrides))
        return made[-1]

    try:
        yield make
    finally:
        for live in made:
            live.close()


# --------------------------------------------------------------------------- expectations


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def predictions_by_id(records: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    by_id: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for prediction in values(records):
        by_id[prediction["id"]].append(prediction)
    return by_id


def wait_predictions(live: Live, reader: TopicReader, ids: set[Any], proc: Any) -> None:
    def done() -> bool:
        seen = {orjson.loads(r.value)["id"] for r in reader.poll()}
        return ids <= seen

    live.wait(done, OUTPUT_TIMEOUT_S, f"predictions of {len(ids)} event ids", proc)


def offline(live: Live, events: list[Any]) -> dict[int, Engine]:
    """An engine per partition fed the partition's records in offset order, as the worker was."""
    by_partition: dict[int, list[Any]] = defaultdict(list)
    for record in events:
        by_partition[record.partition].append(record)
    engines = {}
    for p, records in by_partition.items():
        engine = Engine(live.settings, partition=p)
        for record in sorted(records, key=lambda r: r.offset):
            engine.process(record.value, record.offset)
        engines[p] = engine
    return engines


def offline_outputs(engines: dict[int, Engine]) -> tuple[list[dict], list[dict], list[dict]]:
    predictions, alerts, dead = [], [], []
    for engine in engines.values():
        out = engine.outputs.drain()
        # Round trip through JSON, as the worker publishes them.
        predictions += [
            orjson.loads(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS)) for r in out.predictions
        ]
        alerts += [
            orjson.loads(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS)) for r in out.alerts
        ]
        dead += out.dead_letters
    return predictions, alerts, dead


def newest_snapshots(live: Live) -> dict[int, dict[str, Any]]:
    """The header of the snapshot the worker would restore, per partition (verified, reassembled
    from its chunks, ranked by sequence then watermark: driftline.live.snapshot_records)."""
    reader = Assembler(live.app_id, None, SNAPSHOT_KEY.encode())
    for r in live.reader(live.topics.snapshots).read_to_end():
        reader.add(r.key, r.offset, r.value, r.headers, r.partition, r.timestamp)
    found = reader.finish()
    return {p: sets[0].header for p, sets in found.items() if sets}  # type: ignore[misc]


def without_ts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # An alert's `ts` is the engine clock: wall time live, event time offline.
    return [{k: v for k, v in alert.items() if k != "ts"} for alert in alerts]


# --------------------------------------------------------------------------- tests


def test_end_to_end_predictions_alerts_snapshots_dead_letters(live_factory: Any) -> None:
    live = live_factory(partitions=2, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="2000")
    events = sea_events(12_000)
    written = live.produce_events(events, corrupt=CORRUPT)
    worker = live.start()
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in events}, worker)
    live.wait_assigned(worker, {0, 1})
    exported = live.metrics(worker)
    for name in (
        'driftline_events_total{outcome="valid",partition="0"}',
        'driftline_predictions_total{partition="1",source="model"}',
        "driftline_learned_total",
        "driftline_dead_letters_total",
        'driftline_metric{metric="accuracy",partition="0",window="rolling"}',
        'driftline_processing_seconds_bucket{kind="event"',
        'driftline_consumer_lag{partition="0",topic="',
        "driftline_model_version",
        "driftline_snapshot_bytes",
        "driftline_snapshot_seconds",
    ):
        assert name in exported, name
    alert = r'^driftline_alerts_total\{detector="adwin",kind="\w+",partition="0",signal="error"\} '
    assert re.search(alert, exported, re.M), "no alert counted for partition 0"
    assert live.stop(worker) == 0
    log = live.log(worker)

    by_id = predictions_by_id(predictions.read_to_end())
    assert set(by_id) == {e["id"] for e in events}  # no prediction for a corrupt record
    assert all(len(p) == 1 for p in by_id.values())  # one run, no replay: exactly one each
    assert {p[0]["partition"] for p in by_id.values()} == {0, 1}
    where = {(m.partition, m.offset): i for i, m in enumerate(written)}
    for pid, (prediction,) in by_id.items():
        assert where[(prediction["partition"], prediction["offset"])] == pid

    dead = values(live.reader(live.topics.dead_letter).read_to_end())
    assert sorted(d["original"].encode() for d in dead) == sorted(CORRUPT)
    assert {d["reason"] for d in dead} == {"not_json", "bad_x", "missing_id"}

    # Drift detected on the error signal soon after each true drift (5000, 10000), by event id.
    alerts = values(live.reader(live.topics.alerts).read_to_end())
    drift_ids = [
        where[(a["partition"], a["offset"])]
        for a in alerts
        if a["kind"] == "drift" and a["signal"] == "error"
    ]
    for true_drift in (5000, 10000):
        assert any(true_drift <= i < true_drift + 2500 for i in drift_ids), (true_drift, drift_ids)
    assert not [i for i in drift_ids if i < 5000], "false alarm before the first drift"

    headers = newest_snapshots(live)
    assert set(headers) == {0, 1}
    assert sum(h["events"] for h in headers.values()) == len(events) + len(CORRUPT)
    assert sum(h["labelled"] for h in headers.values()) == len(events)
    assert sum(h["learned"] for h in headers.values()) == len(events)
    assert "snapshot published (periodic)" in log
    assert "snapshot published (shutdown)" in log


def test_serve_refuses_to_start_without_a_snapshot_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    done = subprocess.run(
        [sys.executable, "-m", "driftline", "serve"],
        cwd=REPO_DIR,
        env={**env, "DRIFTLINE_BOOTSTRAP": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no snapshot key" in done.stderr and "DRIFTLINE_SNAPSHOT_KEY" in done.stderr


def test_micro_batch_mode_predicts_and_learns_every_event_once(live_factory: Any) -> None:
    live = live_factory(partitions=2, DRIFTLINE_ENGINE__BATCH_SIZE="50")
    events = sea_events(4000)
    live.produce_events(events, corrupt=CORRUPT[:1])
    worker = live.start()
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in events}, worker)
    assert live.stop(worker) == 0
    by_id = predictions_by_id(predictions.read_to_end())
    assert set(by_id) == {e["id"] for e in events}
    assert all(len(ps) == 1 for ps in by_id.values())
    assert sum(ps[0]["source"] == "model" for ps in by_id.values()) > 0.9 * len(events)
    headers = newest_snapshots(live)
    assert sum(h["learned"] for h in headers.values()) == len(events)
    assert sum(h["events"] for h in headers.values()) == len(events) + 1


def test_live_equals_backtest_on_one_partition(live_factory: Any, tmp_path: Path) -> None:
    live = live_factory(partitions=1)
    events = sea_events(6000)
    live.produce_events(events[:3000], corrupt=CORRUPT[:1])
    live.produce_events(events[3000:], corrupt=CORRUPT[1:])
    worker = live.start()
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in events}, worker)
    assert live.stop(worker) == 0

    # The same bytes, in the same order, through `driftline backtest`.
    source_file = tmp_path / "events.jsonl"
    in_order = live.reader(live.topics.events).read_to_end()
    source_file.write_bytes(b"".join(r.value + b"\n" for r in in_order))
    out = tmp_path / "backtest"
    summary = run_backtest(
        live.settings, open_source(file=str(source_file)), out_dir=out, show_progress=False
    )
    expected_predictions = [
        orjson.loads(x) for x in (out / "predictions.jsonl").read_bytes().splitlines()
    ]
    expected_alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]

    assert values(predictions.read_to_end()) == expected_predictions
    alerts = values(live.reader(live.topics.alerts).read_to_end())
    assert alerts, "sea-abrupt drifts at 5000: the error detector must fire"
    assert without_ts(alerts) == without_ts(expected_alerts)
    (header,) = newest_snapshots(live).values()
    assert header["learned"] == summary["learned"]
    assert header["model_version"] == summary["model_version"]
    assert header["metric"] == pytest.approx(summary["metric"])


def test_kill_9_mid_stream_learns_every_event_exactly_once(live_factory: Any) -> None:
    live = live_factory(partitions=2, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="700")
    events = sea_events(16_000)
    live.produce_events(events, corrupt=CORRUPT)
    worker = live.start("before-crash")

    def processed() -> int:
        status = live.health(worker)
        return 0 if status is None else sum(p["events"] for p in status["partitions"].values())

    live.wait(lambda: processed() >= 3000, OUTPUT_TIMEOUT_S, "3000 events processed", worker)
    worker.kill()  # SIGKILL: no final snapshot, outputs in flight may be lost
    worker.wait(timeout=10)
    at_kill = processed()

    restarted = live.start("after-crash")
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in events}, restarted)
    assert live.stop(restarted) == 0
    assert "restored the snapshot" in live.log(restarted)

    engines = offline(live, live.reader(live.topics.events).read_to_end())
    expected, _, _ = offline_outputs(engines)
    expected_by_id = {p["id"]: p for p in expected}
    by_id = predictions_by_id(predictions.read_to_end())
    assert set(by_id) == set(expected_by_id)  # no event id without a prediction
    replayed = {i: ps for i, ps in by_id.items() if len(ps) > 1}
    assert replayed, f"the crash at {at_kill} events should have forced a replay"
    for i, ps in by_id.items():
        assert all(p == expected_by_id[i] for p in ps), i  # replays predict the same
    headers = newest_snapshots(live)
    for p, engine in engines.items():
        assert headers[p]["learned"] == engine.counters["learned"]  # none lost, none twice
        assert headers[p]["labelled"] == engine.counters["labelled"]
        assert headers[p]["watermark"] == engine.watermark
    assert sum(h["learned"] for h in headers.values()) == len(events)


def test_tampered_snapshot_is_refused(live_factory: Any) -> None:
    live = live_factory(partitions=1)
    first, second = sea_events(1000), sea_events(500, start=1000)
    live.produce_events(first)
    worker = live.start("first")
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, {e["id"] for e in first}, worker)
    assert live.stop(worker) == 0

    # A forgery: a snapshot claiming to have learned everything, not signed with our key.
    valid = live.reader(live.topics.snapshots).read_to_end()[-1].value
    header = {**read_header(valid), "watermark": 10**9, "label_watermark": 10**9}
    forged = sign_snapshot({"anything": "at all"}, header, b"not-the-key-0123456789")
    key = snapshot_key(live.app_id, 0, 0).encode()
    live.produce(live.topics.snapshots, [(key, forged)])
    live.produce_events(second)

    worker = live.start("second")
    wait_predictions(live, predictions, {e["id"] for e in first + second}, worker)
    live.wait_assigned(worker, {0})
    refused = [
        line
        for line in live.metrics(worker).splitlines()
        if line.startswith('driftline_snapshots_refused_total{partition="0"}')
    ]
    assert refused and float(refused[0].split()[-1]) == 1.0
    assert live.stop(worker) == 0
    log = live.log(worker)
    assert "REFUSED the snapshot" in log and "signature does not verify" in log
    assert "restored the snapshot" in log  # the older, valid one: not the forgery, not fresh

    by_id = predictions_by_id(predictions.read_to_end())
    assert all(len(by_id[e["id"]]) == 1 for e in first)  # resumed after them, not from 0
    assert {e["id"] for e in second} <= set(by_id)
    (header,) = newest_snapshots(live).values()
    assert header["learned"] == len(first) + len(second)


def test_two_workers_share_partitions_and_a_rebalance_loses_nothing(live_factory: Any) -> None:
    live = live_factory(partitions=4, DRIFTLINE_SNAPSHOT__EVERY_EVENTS="500")
    batches = [sea_events(2000, start=i * 2000) for i in range(4)]
    predictions = live.reader(live.topics.predictions)
    live.produce_events(batches[0])
    one = live.start("one")
    wait_predictions(live, predictions, {e["id"] for e in batches[0]}, one)

    two = live.start("two")  # joins the group: partitions move from one to two
    live.produce_events(batches[1])

    def shared() -> bool:
        a, b = live.health(one), live.health(two)
        return bool(a and b and a["assigned"] and b["assigned"]) and sorted(
            a["assigned"] + b["assigned"]
        ) == [0, 1, 2, 3]

    live.wait(shared, START_TIMEOUT_S, "both workers owning partitions", two)
    live.produce_events(batches[2])
    wait_predictions(live, predictions, {e["id"] for b in batches[:3] for e in b}, two)

    assert live.stop(one) == 0  # its partitions go to two, after a revocation snapshot
    live.wait_assigned(two, {0, 1, 2, 3})
    live.produce_events(batches[3])
    all_ids = {e["id"] for b in batches for e in b}
    wait_predictions(live, predictions, all_ids, two)
    assert live.stop(two) == 0

    engines = offline(live, live.reader(live.topics.events).read_to_end())
    expected, _, _ = offline_outputs(engines)
    expected_by_id = {p["id"]: p for p in expected}
    by_id = predictions_by_id(predictions.read_to_end())
    assert set(by_id) == all_ids
    for i, ps in by_id.items():
        assert all(p == expected_by_id[i] for p in ps), i
    headers = newest_snapshots(live)
    assert {p: h["learned"] for p, h in headers.items()} == {
        p: e.counters["learned"] for p, e in engines.items()
    }
    assert "snapshot published (revoked)" in live.log(one)


def test_delayed_labels_survive_a_restart(live_factory: Any) -> None:
    live = live_factory(partitions=2)
    events = sea_events(2000, labels=False)
    labels = {e["id"]: y["y"] for e, y in zip(events, sea_events(2000), strict=True)}
    written = live.produce_events(events)
    key_of = {e["id"]: str(e["id"]).encode() for e in events}

    def send_labels(ids: list[int]) -> None:
        live.produce(
            live.topics.labels, [(key_of[i], orjson.dumps({"id": i, "y": labels[i]})) for i in ids]
        )

    send_labels(list(range(0, 1000)))
    worker = live.start("first")
    predictions = live.reader(live.topics.predictions)
    wait_predictions(live, predictions, set(labels), worker)

    def learned(proc: Any) -> int:
        status = live.health(proc)
        return 0 if status is None else sum(p["learned"] for p in status["partitions"].values())

    live.wait(lambda: learned(worker) == 1000, OUTPUT_TIMEOUT_S, "1000 labels joined", worker)
    assert live.stop(worker) == 0

    # The other half of the labels arrives while no worker runs: their predictions wait in the
    # snapshot (and labels for events processed before the restart must still join).
    send_labels(list(range(1000, 2000)))
    worker = live.start("second")
    live.wait(lambda: learned(worker) == 2000, OUTPUT_TIMEOUT_S, "2000 labels joined", worker)
    assert live.stop(worker) == 0
    headers = newest_snapshots(live)
    assert sum(h["learned"] for h in headers.values()) == len(events)
    assert {p for p in headers} == {m.partition for m in written}
    by_id = predictions_by_id(predictions.read_to_end())
    assert all(len(ps) == 1 for ps in by_id.values())  # the restart replayed no event


def test_worker_rides_out_a_broker_outage(tmp_path: Path) -> None:
    """A private broker (the shared one must stay up) goes away for a while and comes back."""
    broker = private_broker(tmp_path)

    bootstrap = broker("start")
    live = None
    try:
        live = Live(bootstrap, tmp_path, 2)
        before, after = sea_events(2000), sea_events(2000, start=2000)
        live.produce_events(before)
        worker = live.start()
        predictions = live.reader(live.topics.predictions)
        wait_predictions(live, predictions, {e["id"] for e in before}, worker)
        predictions.close()
        live.producer.close(timeout=10)  # (kafka-python leaks sockets of failed reconnects)

        broker("stop")
        time.sleep(8)  # the worker loses its fetches, heartbeats and coordinator meanwhile
        assert worker.poll() is None, "the worker died with the broker:\n" + live.log(worker)
        assert broker("start") == bootstrap

        live.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        live.produce_events(after)
        predictions = live.reader(live.topics.predictions)
        wait_predictions(live, predictions, {e["id"] for e in before + after}, worker)
        by_id = predictions_by_id(predictions.read_to_end())
        predictions.close()
        assert live.stop(worker) == 0
        assert set(by_id) == {e["id"] for e in before + after}
        (h0, h1) = newest_snapshots(live).values()
        assert h0["learned"] + h1["learned"] == len(before) + len(after)
    finally:
        if live is not None:
            live.close()
        broker("stop")
