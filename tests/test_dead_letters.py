"""Every rejected record reaches the dead-letter topic: bounded dead letters, counted when the
broker has them; tombstones and out-of-range timestamps have their own reasons; a broker outage
is a few log lines, not tens of thousands."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import orjson
import pytest

from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.events import (
    DEAD_LETTER_ORIGINAL_MAX,
    DEAD_LETTER_PREFIX_BYTES,
    MAX_TS_MS,
    TOMBSTONE,
    InvalidRecord,
    dead_letter,
    decode_event,
    decode_label,
    parse_timestamp,
)
from driftline.live.log_filters import QUIET_S, KafkaClientNoiseFilter
from driftline.live.metrics import WorkerMetrics
from driftline.live.publisher import Publisher, encode

#: What a dead letter may weigh at most, whatever was rejected (Kafka's default limit is 1 MB).
DEAD_LETTER_BOUND = 100_000


def _engine() -> Engine:
    return Engine(from_mapping(LearningConfig, {}, ""), partition=0)


def _rejected(raw: bytes) -> dict[str, Any]:
    engine = _engine()
    engine.process(raw, 0)
    (record,) = engine.outputs.drain().dead_letters
    return record


# --------------------------------------------------------------------------- bounded dead letters


def test_a_6_mb_binary_record_is_a_small_dead_letter_with_prefix_size_and_sha256() -> None:
    raw = bytes(range(256)) * (6 * 1024 * 1024 // 256)
    record = _rejected(raw)
    assert record["reason"] == "oversized"
    assert record["truncated"] is True
    assert "original" not in record
    assert record["original_bytes"] == len(raw)
    assert record["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["encoding"] == "hex"
    assert bytes.fromhex(record["original_prefix"]) == raw[:DEAD_LETTER_PREFIX_BYTES]
    assert record["partition"] == 0 and record["position"] == 0 and record["source"] == "events"
    assert len(encode(record)) < DEAD_LETTER_BOUND


def test_control_bytes_are_measured_as_json_escapes_them() -> None:
    # 1.8 MB of \x01 is valid UTF-8, and six bytes each in JSON ("\u0001"): 10.8 MB once.
    raw = b"\x01" * 1_800_000
    record = _rejected(raw)
    assert record["truncated"] is True and record["encoding"] == "utf-8"
    assert record["original_prefix"] == "\x01" * DEAD_LETTER_PREFIX_BYTES
    assert record["original_bytes"] == 1_800_000
    assert len(encode(record)) < DEAD_LETTER_BOUND
    # Small enough in bytes, too large once escaped: described, not carried.
    small = dead_letter(b"\x01" * 20_000, InvalidRecord("not_json", "x"), "events")
    assert small["truncated"] is True and len(encode(small)) < DEAD_LETTER_BOUND


def test_a_record_that_fits_is_carried_whole_as_before() -> None:
    raw = b'{"id": 1, "x": "' + b"a" * (DEAD_LETTER_ORIGINAL_MAX - 100) + b'"}'
    record = dead_letter(raw, InvalidRecord("bad_x", "no"), "events", 3)
    assert record == {
        "reason": "bad_x",
        "detail": "no",
        "source": "events",
        "position": 3,
        "original": raw.decode(),
        "encoding": "utf-8",
    }
    binary = b"\xff" * (DEAD_LETTER_ORIGINAL_MAX // 2)  # hex doubles it: just fits
    assert bytes.fromhex(dead_letter(binary, InvalidRecord("not_json", "x"), "e")["original"]) == (
        binary
    )
    assert dead_letter(binary + b"\xff", InvalidRecord("not_json", "x"), "e")["truncated"] is True


def test_the_prefix_of_a_utf8_record_is_never_cut_inside_a_character() -> None:
    # "é" is two bytes: after one "a", the first 4096 bytes end with half of one.
    raw = b"a" + "é".encode() * DEAD_LETTER_ORIGINAL_MAX
    record = dead_letter(raw, InvalidRecord("oversized", "big"), "events")
    assert record["encoding"] == "utf-8"
    assert record["original_prefix"] == "a" + "é" * ((DEAD_LETTER_PREFIX_BYTES - 1) // 2)


def test_a_huge_detail_is_cut() -> None:
    value = "v" * 500_000
    with pytest.raises(InvalidRecord) as caught:
        decode_event(orjson.dumps({"id": 1, "ts": value, "x": {}}))
    record = dead_letter(b"{}", caught.value, "events")
    assert caught.value.reason == "bad_ts"
    assert len(record["detail"]) < 2000


def test_text_with_lone_surrogates_becomes_hex_rather_than_failing_to_encode() -> None:
    record = dead_letter("bad \ud800 text", InvalidRecord("bad_csv_row", "x"), "file")
    assert record["encoding"] == "hex"
    encode(record)  # orjson refuses lone surrogates in text: this one is hex


# --------------------------------------------------------------------------- tombstones


def test_a_tombstone_has_its_own_reason_an_empty_value_stays_not_json() -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_event(TOMBSTONE)
    assert caught.value.reason == "tombstone"
    with pytest.raises(InvalidRecord) as caught:
        decode_label(TOMBSTONE)
    assert caught.value.reason == "tombstone"
    with pytest.raises(InvalidRecord) as caught:
        decode_event(b"")
    assert caught.value.reason == "not_json"
    assert TOMBSTONE == b"" and isinstance(TOMBSTONE, bytes)


def test_the_engine_dead_letters_tombstones_on_both_topics() -> None:
    engine = _engine()
    engine.process(TOMBSTONE, 0)
    engine.process_label(TOMBSTONE, 0)
    letters = engine.outputs.drain().dead_letters
    assert [(d["reason"], d["source"], d["original"]) for d in letters] == [
        ("tombstone", "events", ""),
        ("tombstone", "labels", ""),
    ]
    assert engine.dead_letter_reasons == {"tombstone": 2}


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "ts",
    [
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z",
        "2200-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        -1,
        MAX_TS_MS + 1,
        1_704_067_200_000_000,  # epoch microseconds
        1e300,
    ],
)
def test_timestamps_outside_1970_to_2199_are_bad_ts(ts: Any) -> None:
    with pytest.raises(InvalidRecord) as caught:
        decode_event(orjson.dumps({"id": 1, "ts": ts, "x": {}}))
    assert caught.value.reason == "bad_ts"
    with pytest.raises(InvalidRecord):
        decode_label(orjson.dumps({"id": 1, "y": 1, "ts": ts}))


def test_epoch_microseconds_are_named_in_the_detail() -> None:
    with pytest.raises(InvalidRecord, match="microseconds"):
        parse_timestamp(1_704_067_200_000_000)


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        (0, 0),
        ("2199-12-31T23:59:59.999Z", MAX_TS_MS),
        (MAX_TS_MS, MAX_TS_MS),
        ("2199-12-31T23:59:59.999-00:00", MAX_TS_MS),
        ("2200-01-01T00:59:59+01:00", MAX_TS_MS - 999),
    ],
)
def test_the_ends_of_the_range_are_accepted(ts: Any, ms: int) -> None:
    assert parse_timestamp(ts) == ms
    assert decode_event(orjson.dumps({"id": 1, "ts": ts, "x": {}}))["ts"] == ms


# --------------------------------------------------------------------------- publisher


class FakeBroker:
    """send / send_batches for :class:`Publisher`: futures the test resolves."""

    def __init__(self) -> None:
        self.futures: list[tuple[asyncio.Future[Any], list[tuple[bytes | None, bytes]]]] = []
        self.fail_hand_over = 0

    async def send(self, topic: str, key: Any, value: bytes, headers: Any) -> Any:
        if self.fail_hand_over:
            self.fail_hand_over -= 1
            raise ConnectionError("broker gone")
        future = asyncio.get_running_loop().create_future()
        self.futures.append((future, [(key, value)]))
        return future

    async def send_batches(self, topic: str, records: list[Any]) -> list[Any]:
        handed = []
        for i in range(0, len(records), 2):  # two per batch, the odd ones first (reordered)
            batch = records[i : i + 2][::-1]
            future = asyncio.get_running_loop().create_future()
            self.futures.append((future, batch))
            handed.append((future, batch))
        return handed


class TooLarge(Exception):
    pass


async def _resolve(broker: FakeBroker, too_large: bytes) -> None:
    """Answers every request as a broker would: a request holding ``too_large`` fails."""
    while True:
        for future, batch in broker.futures:
            if not future.done():
                if any(value == too_large for _, value in batch):
                    future.set_exception(TooLarge())
                else:
                    future.set_result(None)
        await asyncio.sleep(0.001)


def test_acks_are_called_when_the_broker_has_the_record_and_never_for_a_dropped_one() -> None:
    async def run() -> tuple[list[bytes], WorkerMetrics]:
        broker = FakeBroker()
        metrics = WorkerMetrics(dict)
        publisher = Publisher(
            broker.send, metrics, lambda e: isinstance(e, TooLarge), broker.send_batches
        )
        acked: list[bytes] = []
        values = [b"a", b"b", b"c", b"d", b"e"]
        await publisher.send_many(
            "dead", [(None, v) for v in values], [lambda v=v: acked.append(v) for v in values]
        )
        assert acked == []  # handed over is not published
        resolver = asyncio.create_task(_resolve(broker, b"c"))
        # The batch holding c fails: sent again one by one, c alone is dropped.
        await asyncio.wait_for(publisher.flush(), 10)
        resolver.cancel()
        return acked, metrics

    acked, metrics = asyncio.run(run())
    assert sorted(acked) == [b"a", b"b", b"d", b"e"]
    dropped = metrics.registry.get_sample_value(
        "driftline_outputs_dropped_total", {"topic": "dead"}
    )
    assert dropped == 1.0


def test_a_retried_record_is_acknowledged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("driftline.live.publisher.RETRY_BACKOFF_S", (0.001, 0.002))

    async def run() -> list[int]:
        broker = FakeBroker()
        broker.fail_hand_over = 3
        publisher = Publisher(broker.send, WorkerMetrics(dict), lambda e: False)
        acked: list[int] = []
        await publisher.send_many("dead", [(None, b"x")], [lambda: acked.append(1)])
        assert acked == []
        resolver = asyncio.create_task(_resolve(broker, b""))
        await asyncio.wait_for(publisher.flush(), 10)
        resolver.cancel()
        return acked

    assert asyncio.run(run()) == [1]


# --------------------------------------------------------------------------- log flood


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: Any, level: int = logging.ERROR, name: str = "aiokafka") -> Any:
    return logging.LogRecord(name, level, "", 0, msg, args, None)


def test_a_30_s_outage_is_a_handful_of_lines() -> None:
    clock, said = Clock(), []
    noise = KafkaClientNoiseFilter(
        clock=clock, say=lambda lvl, msg, *a: said.append((lvl, msg % a))
    )
    passed = 0
    for i in range(30 * 1800):  # 1,800 client errors a second, as in the report
        clock.now = 1000.0 + i / 1800
        passed += noise.filter(_record("Unable connect to node with id %s: %s", 1, "Errno 111"))
        passed += noise.filter(_record("Failed fetch messages from 1: NodeNotReadyError"))
        if i % 1800 == 0:
            noise.poll()
    clock.now += 1
    noise.poll()
    assert passed == 0 and noise.down
    clock.now += QUIET_S
    noise.poll()
    assert not noise.down
    levels = [lvl for lvl, _ in said]
    texts = [text for _, text in said]
    assert len(said) <= 5, texts
    assert texts[0].startswith("Kafka broker unreachable: Unable connect")
    assert levels[0] == logging.ERROR
    assert "still unreachable after 10 s" in texts[1]
    assert texts[-1].startswith("Kafka broker reachable again: it was unreachable for 30 s")
    assert f"({2 * 30 * 1800 - 1} client log lines held back)" in texts[-1]


def test_after_an_outage_the_next_one_is_reported_again() -> None:
    clock, said = Clock(), []
    noise = KafkaClientNoiseFilter(clock=clock, say=lambda lvl, msg, *a: said.append(msg % a))
    for _ in range(2):
        noise.filter(_record("Unable to update metadata from [1]"))
        clock.now += QUIET_S
        noise.poll()
        clock.now += 60
    assert [s.split(":")[0] for s in said] == [
        "Kafka broker unreachable",
        "Kafka broker reachable again",
    ] * 2


def test_once_a_broker_answers_no_still_unreachable_line_is_written() -> None:
    clock, said = Clock(), []
    noise = KafkaClientNoiseFilter(clock=clock, say=lambda lvl, msg, *a: said.append(msg % a))
    noise.filter(_record("Unable to update metadata from [1]"))
    clock.now += 9
    noise.filter(_record("Discovered coordinator %s for group %s", 1, "g", level=logging.INFO))
    for _ in range(4):  # the reconnection settling
        clock.now += 1
        noise.filter(_record("Heartbeat session expired - marking coordinator dead"))
        noise.poll()
    clock.now += QUIET_S
    noise.poll()
    assert [s.split(":")[0] for s in said] == [
        "Kafka broker unreachable",
        "Kafka broker reachable again",
    ]


def test_other_client_errors_pass_but_repeats_are_counted_not_written() -> None:
    clock = Clock()
    noise = KafkaClientNoiseFilter(clock=clock, say=lambda *a: pytest.fail(f"said {a}"))
    missing = "Topic %s not found in cluster metadata"
    assert noise.filter(_record(missing, "events"))
    shown = []
    for _ in range(100):  # one a second: the first again after 60 s, with the count
        clock.now += 1
        record = _record(missing, "events")
        if noise.filter(record):
            shown.append(record.getMessage())
    assert shown == [
        "Topic events not found in cluster metadata (and 59 more like it in the last 60 s)"
    ]
    assert noise.filter(_record("Heartbeat failed for group g because it is rebalancing"))
    assert noise.filter(_record("info", level=logging.INFO))
    assert not noise.down


def test_a_record_is_acknowledged_when_the_broker_answers_not_at_the_next_send() -> None:
    async def run() -> list[int]:
        broker = FakeBroker()
        publisher = Publisher(broker.send, WorkerMetrics(dict), lambda e: False)
        acked: list[int] = []
        await publisher.send_many("dead", [(None, b"x")], [lambda: acked.append(1)])
        (future, _), *_ = broker.futures
        future.set_result(None)
        await asyncio.sleep(0)  # no send, no flush: only the loop turns
        return acked

    assert asyncio.run(run()) == [1]
