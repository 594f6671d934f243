"""A backtest's model.snapshot put to work: `driftline predict` with it, and a warm start of the live
worker from it (a partition with no snapshot of its own starts from the backtest's models)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import orjson
import pytest

from driftline.cli.main import main
from driftline.learners.config import LearningConfig
from driftline.learners.engine import Engine
from driftline.learners.snapshot import SnapshotError
from driftline.live.metrics import WorkerMetrics
from driftline.live.worker import Worker
from driftline.offline.datasets import get_dataset
from driftline.settings import load_settings

KEY = "4c8e1a7f3b9d05e2c6a8f1b4d7e03a9c5f2b8e1d4a7c06f3e9b2d5a8c1f4e07b"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", KEY)


def _trained(events: int = 5000) -> tuple[Engine, bytes]:
    engine = Engine(LearningConfig(), partition=0, snapshot_key=KEY.encode())
    for offset, event in enumerate(get_dataset("agrawal-abrupt").events(limit=events)):
        engine.process(event, offset)
    record = engine.checkpoint()
    assert record is not None
    engine.outputs.drain()
    return engine, record["blob"]


def test_warm_start_keeps_what_was_learned_and_starts_a_new_stream() -> None:
    trained, blob = _trained()
    warm = Engine.warm_start(blob, KEY.encode(), LearningConfig(), partition=3, owner="svc")
    # A new stream: nothing processed, no waiting label, no open incident, a metric of its own.
    assert (warm.watermark, warm.label_watermark, warm.index) == (-1, -1, 0)
    assert warm.counters["events"] == 0 and len(warm.pending) == 0
    assert warm.incidents.open is None and warm.metric.get() == 0.0
    assert (warm.partition, warm.owner) == (3, "svc")
    # The models are the backtest's: on the next events both predict the same.
    later = list(get_dataset("agrawal-abrupt").events(limit=5100))[5000:]
    for i, event in enumerate(later):
        trained.process(event, 5000 + i)
        warm.process(event, i)
    assert [p["prediction"] for p in warm.outputs.drain().predictions] == [
        p["prediction"] for p in trained.outputs.drain().predictions
    ]


def test_warm_start_is_verified_like_a_restore() -> None:
    _, blob = _trained(500)
    tampered = bytearray(blob)
    tampered[-3] ^= 1
    with pytest.raises(SnapshotError, match="does not verify"):
        Engine.warm_start(bytes(tampered), KEY.encode(), LearningConfig())
    other_model = dataclasses.replace(
        LearningConfig(), model=dataclasses.replace(LearningConfig().model, name="hoeffding_tree")
    )
    with pytest.raises(SnapshotError, match="holds model 'auto'"):
        Engine.warm_start(blob, KEY.encode(), other_model)


def test_predict_with_a_backtest_snapshot_never_learns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert (
        main(["backtest", "--dataset", "agrawal-abrupt", "--limit", "3000", "--out", str(out)]) == 0
    )
    snapshot = out / "model.snapshot"
    assert snapshot.is_file()
    # The same labelled event 40 times: a model that learned would move its probabilities.
    event = next(get_dataset("agrawal-abrupt").events(limit=1))
    events = tmp_path / "same.jsonl"
    events.write_bytes(b"".join(orjson.dumps({**event, "id": i}) + b"\n" for i in range(40)))
    capsys.readouterr()
    predictions = tmp_path / "predictions.jsonl"
    code = main(
        ["predict", "--snapshot", str(snapshot), "--file", str(events), "--out", str(predictions)]
    )
    assert code == 0
    records = [orjson.loads(line) for line in predictions.read_bytes().splitlines()]
    assert [r["id"] for r in records] == list(range(40))
    assert {r["source"] for r in records} == {"model"}  # a warm model, no fallback
    assert len({orjson.dumps(r["proba"], option=orjson.OPT_NON_STR_KEYS) for r in records}) == 1
    assert "40 predictions" in capsys.readouterr().err


def test_predict_refuses_a_snapshot_that_does_not_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = tmp_path / "model.snapshot"
    forged.write_bytes(b"not a snapshot")
    code = main(["predict", "--snapshot", str(forged), "--dataset", "sea-abrupt", "--limit", "5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_partition_without_a_snapshot_starts_warm_when_configured(tmp_path: Path) -> None:
    _, blob = _trained(2000)
    path = tmp_path / "model.snapshot"
    path.write_bytes(blob)
    settings = load_settings(environ={"DRIFTLINE_SERVICE__WARM_START": str(path)})
    worker = Worker(
        settings,
        KEY.encode(),
        publisher=None,  # type: ignore[arg-type]  (recovery publishes nothing)
        metrics=WorkerMetrics(dict),
        highwater=lambda topic, partition: None,
    )
    engine = worker._recover(2, None, [])  # nothing on the snapshots topic for partition 2
    assert (engine.partition, engine.watermark) == (2, -1)
    assert engine.slots[None].labels_learned == 2000
    fresh = load_settings(environ={})
    cold = Worker(fresh, KEY.encode(), None, WorkerMetrics(dict), lambda t, p: None)  # type: ignore[arg-type]
    assert cold._recover(2, None, []).slots == {}
