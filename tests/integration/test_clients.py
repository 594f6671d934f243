"""The client commands on the real broker: produce, replay, alerts, snapshots, topics.

Every test has topics of its own (``DRIFTLINE_KAFKA__TOPICS__*`` with a unique suffix) and runs
the commands in-process through ``driftline.cli.main.main``; every wait is bounded.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from driftline.cli.main import main
from driftline.learners.snapshot import sign_snapshot
from driftline.live.kafka_clients import read_topic
from driftline.settings import Settings, load_settings

pytestmark = pytest.mark.integration

PARTITIONS = 3
READ_TIMEOUT_S = 30.0
TOPIC_FIELDS = ("events", "labels", "predictions", "alerts", "snapshots", "dead_letter")
KEY = b"6b1f0e9d3c7a2584f1e6b0d9c3a75e28f4b1d6c0e9a3f7258b4e1d0c6a9f3e72"


@pytest.fixture
def settings(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings (from the environment, as the CLI reads them) with topics of this test only."""
    suffix = uuid.uuid4().hex[:10]
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("DRIFTLINE_KAFKA__PARTITIONS", str(PARTITIONS))
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", KEY.decode())
    for field in TOPIC_FIELDS:
        monkeypatch.setenv(f"DRIFTLINE_KAFKA__TOPICS__{field.upper()}", f"it-{field}-{suffix}")
    yield load_settings()


def records_of(settings: Settings, topic: str) -> list[Any]:
    return read_topic(settings, topic, timeout_s=READ_TIMEOUT_S)


def send(settings: Settings, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    assert main(["topics", "create"]) == 0
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    try:
        for key, value in items:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=READ_TIMEOUT_S)
    finally:
        producer.close(timeout=10)


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# --------------------------------------------------------------------------- produce


def test_produce_sends_every_event_keyed_by_its_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["produce", "--dataset", "sea-abrupt", "--limit", "300"]) == 0
    out = capsys.readouterr().out
    assert "300 events" in out and "events/s" in out

    records = records_of(settings, settings.kafka.topics.events)
    assert len(records) == 300
    events = [orjson.loads(r.value) for r in records]
    assert sorted(e["id"] for e in events) == list(range(300))
    assert all(r.key == str(orjson.loads(r.value)["id"]).encode() for r in records)
    assert all("y" in e for e in events)  # labels inline without --label-delay
    assert {r.partition for r in records} == set(range(PARTITIONS))
    # The topics were created with the configured partitions by the command itself.
    assert not records_of(settings, settings.kafka.topics.labels)


def test_label_delay_sends_each_label_later_with_its_events_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, bytes | None, bytes]] = []
    original = KafkaProducer.send

    def recording_send(self: KafkaProducer, topic: str, **kwargs: Any) -> Any:
        sent.append((topic, kwargs.get("key"), kwargs["value"]))
        return original(self, topic, **kwargs)

    monkeypatch.setattr(KafkaProducer, "send", recording_send)
    assert (
        main(["produce", "--dataset", "sea-abrupt", "--limit", "200", "--label-delay", "50"]) == 0
    )

    topics = settings.kafka.topics
    order = {(topic, orjson.loads(value)["id"]): n for n, (topic, _, value) in enumerate(sent)}
    for i in range(200):
        label_at = order[(topics.labels, i)]
        assert label_at > order[(topics.events, i)]
        if i + 50 < 200:  # sent right after event i + 50, before event i + 51
            assert order[(topics.events, i + 50)] < label_at
        if i + 51 < 200:
            assert label_at < order[(topics.events, i + 51)]

    events = {orjson.loads(r.value)["id"]: r for r in records_of(settings, topics.events)}
    labels = {orjson.loads(r.value)["id"]: r for r in records_of(settings, topics.labels)}
    assert set(events) == set(labels) == set(range(200))
    for event_id, label in labels.items():
        event = events[event_id]
        assert "y" not in orjson.loads(event.value)
        assert set(orjson.loads(label.value)) == {"id", "y", "ts"}
        # The label's time is that of the event it was sent after (i + 50; the stream's end for
        # the last 50): the worker applies it there, as the backtest does.
        after = events[min(event_id + 50, 199)]
        assert orjson.loads(label.value)["ts"] == orjson.loads(after.value)["ts"]
        # Same key, same partition: the worker holding the event gets its label.
        assert label.key == event.key
        assert label.partition == event.partition


def test_jsonl_lines_are_sent_verbatim_even_corrupt_ones(
    settings: Settings, tmp_path: Path
) -> None:
    lines = [
        b'{"id": "a", "key": "sensor-1", "x": {"t": 1.5}, "y": 1}',
        b'{"id": "b", "x": {"t": 2.5},   "y": 0}',
        b'{"id": "c", "x": {',
        b"\xff\xfe not utf-8",
        b'["a list", "not an object"]',
    ]
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    assert main(["produce", "--file", str(path)]) == 0

    records = records_of(settings, settings.kafka.topics.events)
    assert sorted(r.value for r in records) == sorted(lines)
    keys = {r.value: r.key for r in records}
    assert keys[lines[0]] == b"sensor-1"  # `key` wins over `id`
    assert keys[lines[1]] == b"b"
    assert keys[lines[2]] is None and keys[lines[3]] is None


def test_produce_paces_to_the_rate(settings: Settings) -> None:
    started = time.monotonic()
    assert main(["produce", "--dataset", "sea-abrupt", "--limit", "100", "--rate", "200"]) == 0
    # 100 events at 200/s: the last is due 0.495 s after the first (a floor, never a ceiling).
    assert time.monotonic() - started >= 0.49
    assert len(records_of(settings, settings.kafka.topics.events)) == 100


# --------------------------------------------------------------------------- replay


def test_replay_sends_in_time_order_at_the_scaled_pace(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA__PARTITIONS", "1")  # one partition: one total order
    base = 1_704_067_200_000
    shuffled = [3, 0, 4, 1, 2]
    lines = [
        orjson.dumps({"id": i, "ts": base + 400 * i, "x": {"v": i}, "y": i % 2}) for i in shuffled
    ]
    # An ISO-8601 time sorts with the epoch ones; an untimed line stays after its predecessor.
    lines.insert(2, b'{"id": 5, "ts": "2024-01-01T00:00:00.200Z", "x": {"v": 5}}')
    lines.insert(3, b"not json at all")
    path = write_jsonl(tmp_path / "history.jsonl", lines)

    started = time.monotonic()
    assert main(["replay", "--file", str(path), "--speed", "4"]) == 0
    elapsed = time.monotonic() - started

    values = [r.value for r in records_of(settings, settings.kafka.topics.events)]
    ids = [orjson.loads(v)["id"] if v.startswith(b"{") else v.decode() for v in values]
    # 0 (0 ms), 5 (200 ms, the untimed line after it in the file follows it), 1 (400), 2 (800),
    # 3 (1200), 4 (1600)
    assert ids == [0, 5, "not json at all", 1, 2, 3, 4]
    assert values[0] == orjson.dumps({"id": 0, "ts": base, "x": {"v": 0}, "y": 0})
    # 1.6 s of history at 4x takes at least 0.4 s (a floor: sleeping never ends early).
    assert elapsed >= 0.39


def test_replay_max_speed_keeps_the_order(settings: Settings, tmp_path: Path) -> None:
    lines = [orjson.dumps({"id": i, "ts": 10_000 - 1000 * i, "x": {}}) for i in range(10)]
    path = write_jsonl(tmp_path / "reversed.jsonl", lines)
    assert main(["replay", "--file", str(path), "--max-speed"]) == 0
    records = records_of(settings, settings.kafka.topics.events)
    assert len(records) == 10
    # Keys are ids; within each partition the offsets follow the time order.
    for partition in {r.partition for r in records}:
        ids = [orjson.loads(r.value)["id"] for r in records if r.partition == partition]
        assert ids == sorted(ids, reverse=True)


# --------------------------------------------------------------------------- alerts


def _alert(n: int) -> dict[str, Any]:
    return {
        "kind": "drift",
        "detector": "adwin",
        "signal": "error",
        "index": 5000 + n,
        "evidence": {"before": 0.1, "after": 0.4},
        "action": "reset",
        "model_version": n,
        "new_model_version": n + 1,
        "partition": n % PARTITIONS,
        "key": None,
        "offset": 1000 + n,
        "ts": 1_704_072_200_000 + n * 1000,
    }


def test_alerts_prints_one_line_per_alert_and_raw_json(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts = [_alert(n) for n in range(3)]
    topic = settings.kafka.topics.alerts
    send(settings, topic, [(f"p{a['partition']}".encode(), orjson.dumps(a)) for a in alerts])
    capsys.readouterr()

    assert main(["alerts", "--from-beginning", "--max", "3", "--timeout", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for n, line in enumerate(sorted(lines)):
        assert f"2024-01-01T01:23:{20 + n}Z" in line
        assert f"partition {n}" in line
        for part in ("adwin", "error", "drift", "reset", f"model v{n} -> v{n + 1}"):
            assert part in line

    assert main(["alerts", "--from-beginning", "--json", "--timeout", "3"]) == 0
    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(printed, key=lambda a: a["index"]) == alerts

    # --kind: a subscriber who wants no warnings (one added here) sees the drifts only.
    warning = {**_alert(3), "kind": "warning"}
    send(settings, topic, [(b"p0", orjson.dumps(warning))])
    assert (
        main(["alerts", "--from-beginning", "--json", "--kind", "warning", "--timeout", "3"]) == 0
    )
    out = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [orjson.loads(x)["index"] for x in out] == [5003], out
    assert main(["alerts", "--from-beginning", "--json", "--kind", "drift", "--timeout", "3"]) == 0
    out = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert sorted(orjson.loads(x)["index"] for x in out) == [5000, 5001, 5002]
    with pytest.raises(SystemExit):
        main(["alerts", "--kind", "drfit"])
    assert "unknown kind drfit; valid: drift, update, recovered, warning, promoted" in (
        capsys.readouterr().err
    )


def test_alerts_stops_after_timeout_of_silence(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    send(settings, settings.kafka.topics.alerts, [(None, orjson.dumps(_alert(0)))])
    capsys.readouterr()
    started = time.monotonic()
    # Without --from-beginning only new alerts count: the old one is not shown.
    assert main(["alerts", "--timeout", "1.5"]) == 0
    assert 1.4 <= time.monotonic() - started < 15
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- snapshots


def _blob(partition: int, version: int, key: bytes = KEY) -> bytes:
    header = {
        "format": 1,
        "partition": partition,
        "model_version": version,
        "events": 1000 * version,
        "learned": 900 * version,
        "watermark": 1000 * version - 1,
        "created_at": 1_704_067_200.0 + version,
    }
    return sign_snapshot({"weights": [version, partition]}, header, key)


def test_snapshots_list_show_verify_on_the_topic(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _blob(1, 3)
    tampered = bytearray(_blob(2, 1))
    tampered[-1] ^= 1
    send(
        settings,
        settings.kafka.topics.snapshots,
        [
            (b"driftline:0", _blob(0, 1)),
            (b"driftline:0", _blob(0, 2)),  # newer snapshot of partition 0
            (b"driftline:1", good),
            (b"driftline:2", bytes(tampered)),
        ],
    )
    capsys.readouterr()

    assert main(["snapshots", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:4] == ["key", "partition", "sequence", "version"]
    by_key = {row.split()[0]: row.split() for row in rows[1:] if row.startswith("driftline:")}
    assert set(by_key) == {"driftline:0", "driftline:1", "driftline:2"}
    assert by_key["driftline:0"][1:7] == ["0", "-", "2", "2,000", "1,800", "1,999"]
    assert by_key["driftline:0"][7] == "2024-01-01T00:00:02Z"
    assert by_key["driftline:0"][10:] == ["yes", "*"]  # what the worker would restore
    assert by_key["driftline:1"][10:] == ["yes", "*"]
    assert by_key["driftline:2"][10] == "NO"

    assert main(["snapshots", "list", "--all", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(r["key"], r["verifies"]) for r in listed] == [
        ("driftline:0", True),
        ("driftline:0", True),
        ("driftline:1", True),
        ("driftline:2", False),
    ]

    assert main(["snapshots", "show", "--partition", "0"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert list(shown) == ["driftline:0"]
    assert shown["driftline:0"]["header"]["model_version"] == 2
    assert shown["driftline:0"]["verifies"] is True

    assert main(["snapshots", "verify"]) == 1
    out = capsys.readouterr().out
    assert "4 snapshots" in out and "3 verify, 1 refused" in out
    assert "driftline:2 (offset" in out and "does not verify" in out

    assert main(["snapshots", "verify", "--partition", "1"]) == 0
    assert "1 verify, 0 refused" in capsys.readouterr().out


def test_snapshots_verify_refuses_another_key(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    send(settings, settings.kafka.topics.snapshots, [(b"driftline:0", _blob(0, 1))])
    monkeypatch.setenv(
        "DRIFTLINE_SNAPSHOT_KEY", "e3a9c1f70b5d2846a1c9e7f3b0d5284c6e1a9f3b7d0c5e28a4f1b9d6c3e07a25"
    )
    assert main(["snapshots", "verify"]) == 1
    assert "1 refused" in capsys.readouterr().out


def test_snapshot_files_still_show_and_verify(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model.snapshot"
    path.write_bytes(_blob(0, 7))
    assert main(["snapshots", "verify", str(path)]) == 0
    assert "signature verifies (model version 7" in capsys.readouterr().out
    assert main(["snapshots", "show", "--file", str(path)]) == 0
    assert orjson.loads(capsys.readouterr().out)["watermark"] == 6999
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert main(["snapshots", "verify", str(path)]) == 1


# --------------------------------------------------------------------------- no broker


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [
        ["produce", "--dataset", "sea-abrupt", "--limit", "10"],
        ["replay", "--file", "{file}", "--max-speed"],
        ["alerts", "--timeout", "1"],
        ["snapshots", "list"],
        ["topics", "create"],
    ],
    ids=lambda c: c[0],
)
def test_unreachable_broker_is_a_plain_message_and_exit_1(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("DRIFTLINE_BOOTSTRAP", raising=False)
    address = f"127.0.0.1:{_closed_port()}"
    file = write_jsonl(tmp_path / "e.jsonl", [b'{"id": 1, "ts": 1, "x": {}}'])
    argv = [part.replace("{file}", str(file)) for part in command]
    started = time.monotonic()
    assert main([*argv, "--bootstrap", address]) == 1
    assert time.monotonic() - started < 15
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"driftline {command[0]}: cannot reach the Kafka broker at {address} (connection refused)"
    )
    assert "Traceback" not in captured.out + captured.err
