"""On the real broker: every rejected record reaches the dead-letter topic (a 6 MB binary record and
1.8 MB of control bytes included), the counter says what is on the topic, tombstones have their own
reason, and a broker outage is a few log lines."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from driftline.learners.events import DEAD_LETTER_PREFIX_BYTES
from integration.test_live_worker import (
    OUTPUT_TIMEOUT_S,
    Live,
    private_broker,
    sea_events,
    values,
    wait_predictions,
)

pytestmark = pytest.mark.integration

BIG = 8 * 1024 * 1024
BINARY = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MB, not UTF-8
CONTROL = b"\x01\x02\x1f" * 600_000  # 1.8 MB of control bytes: 10.8 MB as JSON escapes


def _dead_letters_metric(text: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = re.match(
            r'driftline_dead_letters_total\{partition="\d+",reason="(\w+)"\} (\S+)', line
        )
        if match:
            counts[match.group(1)] += int(float(match.group(2)))
    return counts


def test_large_binary_control_byte_and_tombstone_records_all_reach_the_dead_letter_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    live = Live(kafka_bootstrap, tmp_path, 1)
    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:  # the input must get onto the broker first
            admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        live.topics.events,
                        configs={"max.message.bytes": str(BIG)},
                    )
                ]
            )
        finally:
            admin.close()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=BIG)
        try:
            events = sea_events(200)
            for event in events[:100]:
                producer.send(live.topics.events, orjson.dumps(event))
            for raw in (BINARY, CONTROL, None, b"{not json"):
                producer.send(live.topics.events, key=b"bad", value=raw)
            for event in events[100:]:
                producer.send(live.topics.events, orjson.dumps(event))
            producer.send(live.topics.labels, key=b"bad", value=None)  # a tombstone label
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)

        worker = live.start()
        predictions = live.reader(live.topics.predictions)
        wait_predictions(live, predictions, {e["id"] for e in events}, worker)
        reader = live.reader(live.topics.dead_letter)
        live.wait(lambda: len(reader.poll()) >= 5, OUTPUT_TIMEOUT_S, "5 dead letters", worker)

        def counted() -> Counter[str]:
            return _dead_letters_metric(live.metrics(worker))

        live.wait(lambda: sum(counted().values()) >= 5, 30, "5 dead letters counted", worker)
        exported = counted()
        assert live.stop(worker) == 0

        records = reader.read_to_end()
        dead = values(records)
        assert len(dead) == 5, [(d["reason"], d["source"]) for d in dead]
        assert all(len(r.value) < 100_000 for r in records), [len(r.value) for r in records]
        # The counter counts what is on the topic, reason by reason.
        on_topic = Counter(d["reason"] for d in dead)
        assert exported == on_topic == {"oversized": 2, "tombstone": 2, "not_json": 1}

        by_size = {d.get("original_bytes"): d for d in dead}
        binary, control = by_size[len(BINARY)], by_size[len(CONTROL)]
        for letter, raw in ((binary, BINARY), (control, CONTROL)):
            assert letter["reason"] == "oversized" and letter["truncated"] is True
            assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
            assert letter["source"] == "events" and letter["partition"] == 0
            assert "original" not in letter
        assert bytes.fromhex(binary["original_prefix"]) == BINARY[:DEAD_LETTER_PREFIX_BYTES]
        assert control["original_prefix"].encode() == CONTROL[:DEAD_LETTER_PREFIX_BYTES]
        tombstones = [d for d in dead if d["reason"] == "tombstone"]
        assert sorted(d["source"] for d in tombstones) == ["events", "labels"]
        assert [d["original"] for d in dead if d["reason"] == "not_json"] == ["{not json"]
    finally:
        live.close()


def _problems(log: str) -> list[str]:
    return [line for line in log.splitlines() if "[ERROR]" in line or "[WARNING]" in line]


def test_a_broker_outage_is_a_few_log_lines_saying_lost_and_back(tmp_path: Path) -> None:
    """A private broker (the shared one must stay up) goes away for 20 s and comes back."""
    broker = private_broker(tmp_path)

    bootstrap = broker("start")
    live = None
    try:
        live = Live(bootstrap, tmp_path, 2)
        before, after = sea_events(1000), sea_events(1000, start=1000)
        live.produce_events(before)
        worker = live.start()
        predictions = live.reader(live.topics.predictions)
        wait_predictions(live, predictions, {e["id"] for e in before}, worker)
        predictions.close()
        live.producer.close(timeout=10)
        problems_before = len(_problems(live.log(worker)))

        broker("stop")
        time.sleep(20)
        assert worker.poll() is None, "the worker died with the broker:\n" + live.log(worker)
        during = _problems(live.log(worker))[problems_before:]
        assert broker("start") == bootstrap

        live.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        live.produce_events(after)
        predictions = live.reader(live.topics.predictions)
        wait_predictions(live, predictions, {e["id"] for e in before + after}, worker)
        predictions.close()
        live.wait(
            lambda: "Kafka broker reachable again" in live.log(worker), 30, "the back line", worker
        )
        assert live.stop(worker) == 0
        log = live.log(worker)
        outage = _problems(log)[problems_before:]
        # Before: ~80 ERROR lines a second from the Kafka clients (55,189 in a 30 s outage).
        assert len(during) < 10, "\n".join(during)
        assert len(outage) < 50, "\n".join(outage)
        lost = [line for line in outage if "Kafka broker unreachable" in line]
        back = [line for line in outage if "Kafka broker reachable again" in line]
        assert len(lost) == 1 and "[ERROR]" in lost[0], "\n".join(outage)
        assert len(back) == 1, "\n".join(outage)
        assert any("still unreachable after 10 s" in line for line in outage), "\n".join(outage)
        assert log.index("Kafka broker unreachable") < log.index("Kafka broker reachable again")
    finally:
        if live is not None:
            live.close()
        broker("stop")
