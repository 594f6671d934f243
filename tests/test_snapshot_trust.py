"""Snapshot trust without a broker (issue 7, part 4): keys with real entropy, rotating keys,
chunks, ranking by sequence, refusals counted, the floor, holding a partition."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from driftline.keys import KEY_ENV, KEY_FILE_ENV, load_key
from driftline.learners.engine import Engine
from driftline.learners.snapshot import SnapshotError, new_key
from driftline.live.metrics import WorkerMetrics
from driftline.live.recovery import PartitionSnapshots, choose, restore_newest
from driftline.live.snapshot_floor import Floor, FloorError, decode_floor, encode_floor
from driftline.live.snapshot_records import (
    CHUNK_HEADER,
    SET_HEADER,
    Assembler,
    chunk_records,
    parse_snapshot_key,
    snapshot_key,
)
from driftline.live.worker import Worker
from driftline.settings import Settings, load_settings

KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0")
OTHER = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0fedcba9876543210")
APP = "driftline"


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (" " * 20, "0 bytes, shorter than 32"),  # the key of 20 spaces
        (" " * 40, "0 bytes, shorter than 32"),
        ("k" * 32, "only 1 distinct bytes"),
        ("abcabcabcabcabcabcabcabcabcabcabcabc", "only 3 distinct bytes"),
        ("0123456789abcdefghij" * 2, "repeats a 20-byte pattern"),
        ("  short-but-padded-key   " + " " * 10, "shorter than 32"),
    ],
)
def test_weak_keys_are_refused_with_how_to_make_one(key: str, why: str, tmp_path: Any) -> None:
    with pytest.raises(SnapshotError, match=why) as raised:
        load_key(environ={KEY_ENV: key})
    assert "secrets.token_hex(32)" in str(raised.value)
    assert "driftline snapshots keygen" in str(raised.value)
    path = tmp_path / "key"
    path.write_text(key + "\n")
    with pytest.raises(SnapshotError, match=why):
        load_key(environ={KEY_FILE_ENV: str(path)})


def test_env_key_is_stripped_like_the_file() -> None:
    key = new_key()
    assert len(key) == 64 and load_key(environ={KEY_ENV: f"  {key}\n"}) == key.encode()


def test_generated_keys_always_pass() -> None:
    for _ in range(2000):
        assert load_key(environ={KEY_ENV: new_key()}) is not None


# --------------------------------------------------------------------------- records


def settings(**snapshot: Any) -> Settings:
    env = {f"DRIFTLINE_SNAPSHOT__{k.upper()}": str(v) for k, v in snapshot.items()}
    return load_settings(environ={"DRIFTLINE_SERVICE__APP_ID": APP, **env})


def trained(cfg: Settings, events: int, key: bytes = KEY, sequence: int | None = None) -> Engine:
    engine = Engine(cfg, partition=0, snapshot_key=key, owner=APP)
    for i in range(events):
        engine.process(f'{{"id": {i}, "x": {{"a": {i % 7}.0}}, "y": {i % 2}}}'.encode(), i)
    engine.outputs.drain()
    if sequence is not None:
        engine.counters["snapshots"] = sequence - 1
    return engine


def publish(
    reader: Assembler, engine: Engine, offset: int, chunk: int = 10_000, history: int = 4
) -> tuple[int, bytes]:
    snap = engine.checkpoint()
    assert snap is not None
    engine.outputs.drain()
    seq = snap["header"]["sequence"]
    for i, (k, value, headers) in enumerate(
        chunk_records(APP, 0, seq, history, snap["blob"], chunk)
    ):
        reader.add(k, offset + i, value, headers)
    return seq, snap["blob"]


def test_one_function_spells_every_key() -> None:
    assert snapshot_key(APP, 2, 3) == "driftline:2:s3"
    assert parse_snapshot_key("app:with:colons:7:s1:c4") == ("app:with:colons", 7, 1, 4)
    assert parse_snapshot_key("driftline:7") == ("driftline", 7, None, 0)  # before slots
    assert parse_snapshot_key("driftline:x") is None


def test_keys_rotate_over_the_history_slots() -> None:
    keys = [chunk_records(APP, 0, seq, 4, b"blob", 100)[0][0] for seq in range(1, 9)]
    assert keys == [f"driftline:0:s{seq % 4}" for seq in range(1, 9)]


def test_a_forged_newest_record_leaves_the_valid_newest_restorable() -> None:
    cfg = settings()
    reader = Assembler(APP, [0], KEY, keep=8)
    engine = trained(cfg, 50)
    for offset in range(3):
        publish(reader, engine, offset)
    theirs = trained(cfg, 60, key=OTHER, sequence=99)
    snap = theirs.checkpoint()
    assert snap is not None
    reader.add(snapshot_key(APP, 0, 3), 10, snap["blob"])
    sets = reader.finish()[0]
    assert [s.sequence for s in sets] == [3, 2, 1]  # ranked by the verified header
    assert len(reader.refusals) == 1 and "does not verify" in reader.refusals[0].reason


def test_forged_records_ranking_below_a_valid_one_are_counted_too() -> None:
    cfg = settings()
    reader = Assembler(APP, [0], KEY, keep=8)
    publish(reader, trained(cfg, 50, sequence=9), 0)
    low = trained(cfg, 10, key=OTHER, sequence=1).checkpoint()
    assert low is not None
    reader.add(snapshot_key(APP, 0, 1), 5, low["blob"])
    found = PartitionSnapshots(reader.finish()[0], reader.refusals)
    refused: list[str] = []
    choice = restore_newest(found, KEY, cfg, 0, refuse=lambda r: refused.append(r.reason))
    assert choice.restored is not None and choice.restored.sequence == 9
    assert len(refused) == 1 and "does not verify" in refused[0]


def test_large_snapshots_are_chunked_and_reassembled() -> None:
    cfg = settings()
    reader = Assembler(APP, [0], KEY, keep=8)
    engine = trained(cfg, 300)
    seq, blob = publish(reader, engine, 0, chunk=1024)
    (found,) = reader.finish()[0]
    assert found.chunks == -(-len(blob) // 1024) > 1 and found.blob == blob
    assert found.sequence == seq and not reader.refusals


def test_a_missing_or_mismatching_chunk_is_refused_and_an_older_set_used() -> None:
    cfg = settings()
    engine = trained(cfg, 300)
    snap_old = engine.checkpoint()
    snap_new = engine.checkpoint()
    assert snap_old and snap_new
    old = chunk_records(APP, 0, 1, 4, snap_old["blob"], 1024)
    new = chunk_records(APP, 0, 2, 4, snap_new["blob"], 1024)
    # missing: chunk 1 of the newest never arrived
    reader = Assembler(APP, [0], KEY, keep=8)
    for i, (k, v, h) in enumerate(old + [r for j, r in enumerate(new) if j != 1]):
        reader.add(k, i, v, h)
    assert [s.sequence for s in reader.finish()[0]] == [1]
    assert ["chunk(s) 1 of" in r.reason for r in reader.refusals] == [True]
    # mismatching: chunk 1 of the newest replaced by other bytes under the same set id
    reader = Assembler(APP, [0], KEY, keep=8)
    k1, v1, h1 = new[1]
    tampered = [*new[:1], (k1, bytes([v1[0] ^ 1]) + v1[1:], h1), *new[2:]]
    for i, (k, v, h) in enumerate(old + tampered):
        reader.add(k, i, v, h)
    assert [s.sequence for s in reader.finish()[0]] == [1]
    assert ["do not reassemble" in r.reason for r in reader.refusals] == [True]


def test_leftover_chunks_of_a_replaced_set_are_not_refusals() -> None:
    # After compaction: slot 1 held a 5-chunk snapshot, then a 2-chunk one (sequence 5).
    cfg = settings()
    big = trained(cfg, 300).checkpoint()
    small = trained(cfg, 2, sequence=5).checkpoint()
    assert big and small
    first = chunk_records(APP, 0, 1, 4, big["blob"], len(big["blob"]) // 4)
    second = chunk_records(APP, 0, 5, 4, small["blob"], len(small["blob"]) // 2 + 1)
    reader = Assembler(APP, [0], KEY, keep=8)
    left = first[len(second) :]  # the keys the new set did not overwrite
    for i, (k, v, h) in enumerate(left):
        reader.add(k, i, v, h)
    for i, (k, v, h) in enumerate(second):
        reader.add(k, 100 + i, v, h)
    assert [s.sequence for s in reader.finish()[0]] == [5]
    assert reader.refusals == []


def test_republished_older_snapshots_are_refused() -> None:
    cfg = settings()
    engine = trained(cfg, 20)
    reader = Assembler(APP, [0], KEY, keep=8)
    for offset in range(6):
        publish(reader, engine, offset)
    blob1 = trained(cfg, 20, sequence=1).checkpoint()
    assert blob1 is not None
    one = chunk_records(APP, 0, 1, 4, blob1["blob"], 10_000)[0]
    reader.add(snapshot_key(APP, 0, 2), 10, one[1], one[2])  # under another slot's key
    reader.add(snapshot_key(APP, 0, 1), 11, one[1], one[2])  # its own key, after sequence 5
    assert reader.finish()[0][0].sequence == 6
    reasons = [r.reason for r in reader.refusals]
    assert len(reasons) == 2
    assert "sequence 1 belongs in slot 1, found under driftline:0:s2" in reasons[0]
    assert "published under driftline:0:s1 after sequence 5" in reasons[1]


def test_a_tombstone_deletes_what_its_key_held() -> None:
    cfg = settings()
    engine = trained(cfg, 20)
    reader = Assembler(APP, [0], KEY, keep=8)
    for offset in range(3):
        publish(reader, engine, offset)
    reader.add(snapshot_key(APP, 0, 3), 50, None)
    assert [s.sequence for s in reader.finish()[0]] == [2, 1]


def test_copied_from_another_partition_is_refused() -> None:
    cfg = settings()
    other = Engine(cfg, partition=1, snapshot_key=KEY, owner=APP).checkpoint()
    assert other is not None
    reader = Assembler(APP, [0], KEY, keep=8)
    reader.add(snapshot_key(APP, 0, 1), 0, other["blob"])
    assert reader.finish()[0] == []  # (as the worker reads: refused sets are not kept)
    assert "signed for partition 1" in reader.refusals[0].reason


# --------------------------------------------------------------------------- floor and choice


def test_floor_metadata_is_signed_and_bound_to_its_partition() -> None:
    text = encode_floor(Floor(5, 99), APP, 0, KEY)
    assert decode_floor(text, APP, 0, KEY) == Floor(5, 99)
    for app, p, key in ((APP, 1, KEY), ("other", 0, KEY), (APP, 0, OTHER)):
        with pytest.raises(FloorError):
            decode_floor(text, app, p, key)
    with pytest.raises(FloorError):
        decode_floor(text.replace('"sequence":5', '"sequence":1'), APP, 0, KEY)


def _found(cfg: Settings, sequences: list[int], **kw: Any) -> PartitionSnapshots:
    reader = Assembler(APP, [0], KEY, keep=8)
    for i, seq in enumerate(sequences):
        publish(reader, trained(cfg, 10 + i, sequence=seq), i)
    return PartitionSnapshots(reader.finish()[0], reader.refusals, **kw)


def test_restore_picks_the_highest_sequence_then_the_watermark() -> None:
    cfg = settings()
    found = _found(cfg, [3, 7, 5])
    best, below = choose(found.sets, None)
    assert best is not None and best.sequence == 7 and below == []


def test_a_snapshot_below_the_floor_is_refused_and_the_partition_held() -> None:
    cfg = settings()
    found = _found(cfg, [3, 4], floor=Floor(6))
    refused: list[str] = []
    choice = restore_newest(found, KEY, cfg, 0, refuse=lambda r: refused.append(r.reason))
    assert choice.engine is None and "at or above sequence 6" in choice.held
    assert len(refused) == 1 and "sequence 4 is older than sequence 6" in refused[0]


def test_a_floor_with_no_snapshot_left_holds_the_partition() -> None:
    choice = restore_newest(PartitionSnapshots(floor=Floor(3)), KEY, settings(), 0, refuse=print)
    assert choice.held and not choice.fresh


def test_a_reset_floor_starts_afresh_quietly() -> None:
    cfg = settings()
    refused: list[str] = []
    found = _found(cfg, [3, 4], floor=Floor(9, reset=True))
    choice = restore_newest(found, KEY, cfg, 0, refuse=lambda r: refused.append(r.reason))
    assert choice.fresh and not choice.held and refused == []


def test_an_unverifiable_floor_holds() -> None:
    found = PartitionSnapshots(floor=FloorError("the snapshot floor of partition 0 is unreadable"))
    assert restore_newest(found, KEY, settings(), 0, refuse=print).held


# --------------------------------------------------------------------------- the worker


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, Any]] = []

    async def send(self, topic: str, key: Any, value: bytes, headers: Any = None, ack: Any = None):
        self.sent.append((topic, key, value, headers))
        if ack is not None:
            ack()

    async def send_many(self, topic: str, records: Any, acks: Any = None) -> None:
        for n, (key, value) in enumerate(records):
            await self.send(topic, key, value, None, acks[n] if acks else None)

    async def flush(self) -> None:
        pass


class FakeFloors:
    def __init__(self) -> None:
        self.commits: list[tuple[int, Floor]] = []

    def commit(self, p: int, floor: Floor) -> None:
        self.commits.append((p, floor))


def _worker(cfg: Settings) -> tuple[Worker, FakePublisher, FakeFloors]:
    publisher = FakePublisher()
    worker = Worker(cfg, KEY, publisher, WorkerMetrics(dict), lambda t, p: None)  # type: ignore[arg-type]
    floors = FakeFloors()
    worker.keeper.floor_store = floors
    return worker, publisher, floors


def _value(worker: Worker, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


def test_worker_holds_a_partition_whose_snapshots_are_all_forged() -> None:
    cfg = settings()
    worker, publisher, _ = _worker(cfg)
    reader = Assembler(APP, [0], KEY, keep=8)
    for slot in range(4):
        forged = trained(cfg, 5, key=OTHER).checkpoint()
        assert forged is not None
        reader.add(snapshot_key(APP, 0, slot), slot, forged["blob"])
    found = {0: PartitionSnapshots(reader.finish()[0], reader.refusals)}
    resume = asyncio.run(worker.on_assigned([0], found))
    assert resume == {} and worker.engines == {} and 0 in worker.keeper.held
    assert _value(worker, "driftline_snapshots_refused_total", partition="0") == 4
    assert _value(worker, "driftline_partitions_held_total", partition="0") == 1
    assert _value(worker, "driftline_held_partitions") == 1
    ((topic, key, value, _),) = publisher.sent
    assert topic == cfg.kafka.topics.alerts and key == b"0" and b"snapshot_refused" in value
    assert b"driftline snapshots reset --partition 0 --yes" in value


def test_worker_publishes_chunks_then_commits_the_floor() -> None:
    cfg = settings(chunk_bytes=2048)
    worker, publisher, floors = _worker(cfg)
    engine = trained(cfg, 300)
    snap = engine.checkpoint()
    assert snap is not None

    async def publish() -> None:
        await worker._publish_snapshot(0, snap, "periodic")
        # A periodic snapshot's floor is committed beside the processing: not yet, then once.
        assert floors.commits == []
        await worker.keeper.settle()

    asyncio.run(publish())
    keys = [k.decode() for _, k, _, _ in publisher.sent]
    seq = snap["header"]["sequence"]
    assert keys[0] == snapshot_key(APP, 0, seq % 4) and len(keys) > 1
    assert all(len(v) <= 2048 for _, _, v, _ in publisher.sent)
    headers = dict(publisher.sent[0][3])
    assert headers[SET_HEADER] == hashlib.sha256(snap["blob"]).hexdigest().encode()
    assert headers[CHUNK_HEADER] == f"0/{len(keys)}".encode()
    assert floors.commits == [(0, Floor(seq, engine.watermark))]


class FailingFloors(FakeFloors):
    """A floor store whose first ``failures`` commits fail (a broker away)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def commit(self, p: int, floor: Floor) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("the group coordinator is not available")
        super().commit(p, floor)


def test_a_revoked_partition_has_its_floors_committed_when_the_revocation_returns() -> None:
    # The next owner reads the floors: a periodic snapshot's floor, committed beside the
    # processing, is in by then, also when nothing new needs a final snapshot.
    cfg = settings()
    worker, _, floors = _worker(cfg)
    engine = trained(cfg, 30, sequence=5)
    periodic = engine.checkpoint()
    assert periodic is not None

    async def run() -> list[tuple[int, Floor]]:
        await worker.on_assigned([0], {})
        worker.engines[0] = engine  # the engine that periodic snapshot was taken of
        await worker._publish_snapshot(0, periodic, "periodic")
        await worker.on_revoked([0])  # nothing new since it: no final snapshot
        return list(floors.commits)

    assert asyncio.run(run()) == [(0, Floor(5, engine.watermark))]


def test_a_floor_whose_commit_failed_is_committed_with_the_next_snapshot() -> None:
    cfg = settings()
    worker, _, _ = _worker(cfg)
    floors = worker.keeper.floor_store = FailingFloors(failures=1)
    first = trained(cfg, 30, sequence=5).checkpoint()
    second = trained(cfg, 30, sequence=6).checkpoint()
    assert first is not None and second is not None

    async def run() -> None:
        await worker._publish_snapshot(0, first, "periodic")
        await worker.keeper.settle()
        assert floors.commits == []  # failed: it stays in the worker, waiting
        await worker._publish_snapshot(0, second, "periodic")
        await worker.keeper.settle()

    asyncio.run(run())
    assert [floor.sequence for _, floor in floors.commits] == [6]


def test_worker_refuses_an_older_snapshot_after_publishing_a_newer_one() -> None:
    # The floor in the worker process: what it published itself cannot be rolled back.
    cfg = settings()
    worker, _, _ = _worker(cfg)
    older = _found(cfg, [2])
    newer = trained(cfg, 30, sequence=5).checkpoint()
    assert newer is not None

    async def publish_then_take_over() -> None:
        await worker._publish_snapshot(0, newer, "periodic")
        await worker.on_assigned([0], {0: older})

    asyncio.run(publish_then_take_over())
    assert worker.engines == {} and "at or above sequence 5" in worker.keeper.held[0]
