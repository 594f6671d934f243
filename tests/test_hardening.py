"""Hostile and unusual input: each test pins a failure mode found in review."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from river.datasets import synth

from driftline.detectors.monitor import SignalMonitor
from driftline.learners.config import ConfigError, LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.snapshot import SnapshotError
from driftline.offline.backtest import run_backtest
from driftline.offline.sources import open_source
from driftline.settings import load_settings

KEY = b"k" * 32


def sea(n: int, seed: int = 1, start: int = 0) -> list[dict[str, Any]]:
    stream = itertools.islice(synth.SEA(variant=0, seed=seed), n)
    return [{"id": start + i, "x": dict(x), "y": bool(y)} for i, (x, y) in enumerate(stream)]


def config(**sections: Any) -> LearningConfig:
    return from_mapping(LearningConfig, sections, "")


def feed(engine: Engine, events: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    for offset, event in enumerate(events, start):
        engine.process(event, offset)
    return engine.outputs.drain().predictions


# --------------------------------------------------------------------------- snapshots


def test_snapshot_of_another_partition_is_refused() -> None:
    engine = Engine(config(), partition=3, snapshot_key=KEY, owner="app")
    feed(engine, sea(300))
    blob = engine.checkpoint()["blob"]  # type: ignore[index]
    with pytest.raises(SnapshotError, match="partition 3"):
        Engine.restore(blob, KEY, config(), partition=0, owner="app")
    with pytest.raises(SnapshotError, match="owner 'app'"):
        Engine.restore(blob, KEY, config(), partition=3, owner="other-app")
    restored = Engine.restore(blob, KEY, config(), partition=3, owner="app")
    assert (restored.partition, restored.watermark) == (3, 299)


def test_snapshot_of_another_model_is_refused() -> None:
    engine = Engine(config(), partition=0, snapshot_key=KEY)
    feed(engine, sea(100))
    blob = engine.checkpoint()["blob"]  # type: ignore[index]
    with pytest.raises(SnapshotError, match=r"model 'auto'.*'hoeffding_tree'"):
        Engine.restore(blob, KEY, config(model={"name": "hoeffding_tree"}), partition=0)


def test_checkpoint_does_not_change_what_comes_next() -> None:
    # rollback + snapshot fallback read the last-good model: an off-schedule checkpoint (shutdown,
    # revocation) must not move it, or a restored run would predict differently.
    cfg = config(
        policy={"action": "rollback"},
        fallback={"kind": "snapshot"},
        snapshot={"every_events": 2000},
    )
    events = sea(4900, seed=2) + [
        {**e, "id": 4900 + i, "y": not e["y"]} for i, e in enumerate(sea(4100, seed=3))
    ]
    straight = Engine(cfg, partition=0, snapshot_key=KEY)
    expected = feed(straight, events)

    first = Engine(cfg, partition=0, snapshot_key=KEY)
    before = feed(first, events[:4900])
    blob = first.checkpoint()["blob"]  # type: ignore[index]
    resumed = Engine.restore(blob, KEY, cfg, partition=0)
    after = feed(resumed, events[4900:], 4900)
    assert before + after == expected


# --------------------------------------------------------------------------- input bounds


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": 1, "x": {"a": 1e308}}', "out_of_range"),
        (b'{"id": 1, "x": {"a": -1e16}}', "out_of_range"),
        (b'{"id": 1, "x": {"a": 1}, "ts": 1e300}', "bad_ts"),
        (b'{"id": 1, "x": {"a": 1}, "ts": -5}', "bad_ts"),
        (b'{"id": 1, "x": {"a": 1}, "y": 1e300}', "bad_label"),
    ],
)
def test_absurd_magnitudes_are_dead_lettered(raw: bytes, reason: str) -> None:
    engine = Engine(config())
    engine.process(raw, 0)
    out = engine.outputs.drain()
    assert [d["reason"] for d in out.dead_letters] == [reason]
    assert out.predictions == []


def test_one_huge_value_in_warm_up_does_not_ruin_the_model() -> None:
    events = sea(3000)
    events[10]["x"]["1"] = 1e308
    engine = Engine(config())
    feed(engine, events)
    assert engine.dead_letter_reasons == {"out_of_range": 1}
    assert engine.metric.get() > 0.8  # it was 0.47 when the value reached the variances


def test_csv_rows_that_cannot_be_parsed_are_dead_lettered(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b,y\n1,2,1\n3\n\xff\xfe,4,0\n5,6,0\n7,8,99999999999999999999999\n")
    summary = run_backtest(
        load_settings(environ={}),
        open_source(file=str(path), target="y"),
        out_dir=tmp_path / "out",
        show_progress=False,
    )
    assert summary["events"] == 5
    assert summary["dead_letter_reasons"] == {"bad_csv_row": 2, "bad_label": 1}
    letters = (tmp_path / "out" / "dead_letter.jsonl").read_text().splitlines()
    assert '"original":"3"' in letters[0]
    assert '"encoding":"hex"' in letters[1]


def test_a_dead_letter_of_an_unserialisable_dict_never_raises() -> None:
    engine = Engine(config())
    engine.process({"id": 1, "x": {"a": 2**70}, "y": {1, 2}}, 0)
    assert [d["reason"] for d in engine.outputs.drain().dead_letters] == ["out_of_range"]


def test_a_future_producer_clock_does_not_expire_waiting_labels() -> None:
    engine = Engine(config())
    engine.process({"id": "a", "x": {"v": 1.0}, "y": True}, 0, record_ts=1_000_000)
    engine.process({"id": "b", "x": {"v": 1.0}}, 1, record_ts=1_000_000)
    # A producer clock a year ahead: the engine's clock moves at most a minute past the time of
    # the record (its Kafka timestamp: the same on every replay, unlike the wall clock).
    engine.process({"id": "c", "x": {"v": 1.0}, "ts": 1_000_000 + 365 * 86_400_000}, 2, 1_000_000)
    engine.process_label({"id": "b", "y": True}, record_ts=1_000_000)
    assert engine.counters["labels_joined"] == 1


# --------------------------------------------------------------------------- models and monitors


def test_a_late_label_of_a_replaced_model_is_not_monitored() -> None:
    engine = Engine(config(detectors={"error": {"warmup": 0}}))
    feed(engine, sea(100))
    x = sea(1)[0]["x"]
    engine.process({"id": "late", "x": x}, 100)
    slot = engine.slots[None]
    slot.apply("reset")  # the model that predicted "late" is gone
    engine.process({"id": "new", "x": x}, 101)  # predicted by the fresh model
    monitor = slot.monitor
    assert monitor is not None
    fed: list[int] = []
    update = monitor.update

    def spy(value: float, index: int) -> Any:
        fed.append(index)
        return update(value, index)

    monitor.update = spy  # type: ignore[method-assign]
    engine.process_label({"id": "late", "y": True})
    assert fed == []
    engine.process_label({"id": "new", "y": True})  # the current model's own error is watched
    assert len(fed) == 1
    assert engine.counters["labels_joined"] == 2


def test_a_warning_that_never_becomes_a_drift_lapses() -> None:
    rng = random.Random(2)
    mon = SignalMonitor("error", "adwin", {}, direction="up", recovery_events=500)
    values = [float(rng.random() < 0.1) for _ in range(2000)]
    values += [float(rng.random() < 0.13) for _ in range(1500)]
    alerts = [(a["kind"], i) for i, v in enumerate(values) if (a := mon.update(v, i))]
    assert alerts == [("warning", 2911)]
    assert not mon.warning_active  # 500 quiet updates later, a new change may warn again


def test_configured_classification_with_boolean_labels_is_binary() -> None:
    engine = Engine(config(engine={"task": "classification"}))
    feed(engine, sea(10))
    assert engine.binary is True
    engine.process({"id": 99, "x": {"a": 1.0}, "y": 3}, 10)
    assert engine.dead_letter_reasons == {"bad_label": 1}


def test_micro_batch_rows_carry_the_version_that_predicted_them() -> None:
    cfg = config(
        engine={"batch_size": 500},
        policy={"action": "reset"},
        detectors={"error": {"warmup": 0}},
        fallback={"warmup_labels": 0},
    )
    events = sea(2000, seed=4) + [
        {**e, "id": 2000 + i, "y": not e["y"]} for i, e in enumerate(sea(2000, seed=5))
    ]
    engine = Engine(cfg)
    versions_by_batch = []
    for start in range(0, len(events), 500):
        version = engine.slots[None].version if engine.slots else 1
        engine.process_batch(events[start : start + 500], list(range(start, start + 500)))
        predictions = engine.outputs.drain().predictions
        versions_by_batch.append(({p["model_version"] for p in predictions}, version))
    assert engine.counters["learned"] == 4000  # learn_many learned every batch
    assert engine.slots[None].version > 1  # a reset did happen
    for seen, at_start in versions_by_batch:
        assert seen == {at_start}


# --------------------------------------------------------------------------- settings


def test_a_metric_fixes_the_task() -> None:
    assert load_settings(environ={"DRIFTLINE_ENGINE__METRIC": "mae"}).engine.task == "regression"
    with pytest.raises(ConfigError, match=r"^engine\.metric: 'mae' is a regression metric"):
        load_settings(
            environ={"DRIFTLINE_ENGINE__METRIC": "mae", "DRIFTLINE_ENGINE__TASK": "classification"}
        )


def test_a_classifier_only_model_needs_the_task_set() -> None:
    with pytest.raises(ConfigError, match=r"no regression variant.*set engine.task"):
        load_settings(environ={"DRIFTLINE_MODEL__NAME": "naive_bayes"})
    settings = load_settings(
        environ={"DRIFTLINE_MODEL__NAME": "naive_bayes", "DRIFTLINE_ENGINE__TASK": "classification"}
    )
    assert settings.model.name == "naive_bayes"


def test_text_settings_accept_digits() -> None:
    assert load_settings(environ={"DRIFTLINE_SERVICE__APP_ID": "2024"}).service.app_id == "2024"
