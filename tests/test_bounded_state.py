"""Bounded state whatever the input (issue 7, part 3): a string feature with an ever-new value, or
ever-new feature names, must not grow the model, the memory or the snapshots without end."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driftline.learners.config import ConfigError, LearningConfig, from_mapping
from driftline.learners.encoding import OVERFLOW, FeatureEncoder
from driftline.learners.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
KEY = b"bounded-state-test-key-32-bytes!"


def make_config(**sections: Any) -> LearningConfig:
    return from_mapping(LearningConfig, sections, "")


def events(n: int, start: int = 0, seed: int = 0, users: int | None = None) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        a, b = rng.uniform(0, 10), rng.uniform(0, 10)
        user = f"u{i}" if users is None else f"u{rng.randrange(users)}"
        out.append({"id": i, "x": {"a": a, "b": b, "user": user}, "y": a + b > 10})
    return out


def test_string_values_past_the_cap_share_one_overflow_input() -> None:
    engine = Engine(make_config(engine={"max_string_values": 50}))
    for offset, event in enumerate(events(300)):
        engine.process(event, offset)
    assert engine.encoder.values["user"] == {f"u{i}" for i in range(50)}
    assert engine.counters["string_overflow"] == 250
    weights = engine.slots[None].model["LogisticRegression"].weights
    users = {name for name in weights if name.startswith("user=")}
    assert users == {f"user=u{i}" for i in range(50)} | {f"user={OVERFLOW}"}
    # An admitted value keeps its own input; a new one is the overflow bucket.
    counters: dict[str, int] = {}
    assert engine.encoder.encode({"user": "u7"}, counters) == {"user=u7": 1}
    assert engine.encoder.encode({"user": "new"}, counters) == {f"user={OVERFLOW}": 1}


def test_new_feature_names_past_the_cap_are_left_out() -> None:
    engine = Engine(make_config(engine={"max_inputs": 20}))
    rng = random.Random(1)
    for i in range(200):
        x = {"a": rng.random(), f"f{i}": rng.random(), "tag": f"t{i}"}
        engine.process({"id": i, "x": x, "y": x["a"] > 0.5}, i)
    enc = engine.encoder
    assert enc.inputs == 20
    assert len(enc.names) + sum(len(v) for v in enc.values.values()) == 20
    assert engine.counters["features_dropped"] > 0
    assert engine.counters["string_overflow"] > 0
    # The guard tracks at most as many features as the model may have inputs.
    assert len(engine.guard.stats) <= 20
    weights = engine.slots[None].model["LogisticRegression"].weights
    assert len(weights) <= 20


def test_the_mapping_is_deterministic_and_survives_a_snapshot() -> None:
    # Same events in the same order: the same admitted values, the same predictions; and an
    # engine restored from a snapshot mid-stream goes on exactly as the one that was not stopped.
    config = make_config(engine={"max_string_values": 30}, snapshot={"every_events": 0})
    stream = events(2000, users=100)
    straight = Engine(config, snapshot_key=KEY)
    for offset, event in enumerate(stream):
        straight.process(event, offset)
    first = Engine(config, snapshot_key=KEY)
    for offset, event in enumerate(stream[:1000]):
        first.process(event, offset)
    record = first.checkpoint()
    assert record is not None
    resumed = Engine.restore(record["blob"], KEY, config)
    assert resumed.encoder.values == first.encoder.values
    for offset, event in enumerate(stream[1000:], 1000):
        resumed.process(event, offset)
    assert resumed.encoder.values == straight.encoder.values
    assert resumed.counters["string_overflow"] == straight.counters["string_overflow"] > 0
    expected = [p["prediction"] for p in straight.outputs.predictions[1000:]]
    assert [p["prediction"] for p in resumed.outputs.drain().predictions] == expected
    # The warm start takes the mapping with the model it belongs to.
    warm = Engine.warm_start(record["blob"], KEY, config)
    assert warm.encoder.values == first.encoder.values


def test_micro_batches_encode_with_the_same_caps() -> None:
    config = make_config(engine={"max_string_values": 40, "batch_size": 100})
    engine = Engine(config)
    stream = events(1000)
    engine.process(stream[0], 0)  # the first label decides the task: then batches go vectorised
    for start in range(1, 1000, 100):
        chunk = stream[start : start + 100]
        engine.process_batch(chunk, list(range(start, start + len(chunk))))
    assert len(engine.encoder.values["user"]) == 40
    assert engine.counters["string_overflow"] == 960


def test_old_snapshots_of_the_guard_still_load() -> None:
    # A guard pickled before the range was kept (no lo/hi) judges by z alone after a restore.
    from driftline.learners.guard import _Running

    running = _Running()
    for v in range(100):
        running.add(float(v))
    state = (None, {"n": running.n, "mean": running.mean, "m2": running.m2})
    restored = _Running.__new__(_Running)
    restored.__setstate__(state)
    assert restored.z(5000.0) > 100 and restored.lo == float("inf")
    assert pickle.loads(pickle.dumps(running)).hi == 99.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_string_values": 0}, r"^engine\.max_string_values: must be >= 1"),
        ({"max_inputs": 0}, r"^engine\.max_inputs: must be >= 1"),
    ],
)
def test_caps_are_validated(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(engine=section)


def test_encoder_doctest_style_overflow_once_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    enc = FeatureEncoder(max_string_values=1, max_inputs=100)
    counters: dict[str, int] = {}
    with caplog.at_level("WARNING", logger="driftline.encoding"):
        for value in ("a", "b", "c", "d"):
            enc.encode({"s": value}, counters)
    assert counters == {"string_overflow": 3}
    assert len(caplog.records) == 1 and "engine.max_string_values" in caplog.text


def _bench(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_state.py"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.slow
def test_200k_ever_new_user_strings_keep_memory_and_snapshots_flat() -> None:
    """Before the cap: RSS +140 MiB and snapshots 0.8 -> 3.1 MiB from 50k to 200k events, linear
    in the distinct values (BENCHMARKS.md). With it both stay flat once the cap has filled."""
    rows = {row["events"]: row for row in _bench("--events", "200000")}
    at_50k, at_200k = rows[50_000], rows[200_000]
    assert at_200k["snapshot_bytes"] <= 1.2 * at_50k["snapshot_bytes"]
    assert at_200k["rss_mib"] - at_50k["rss_mib"] < 20  # was +100 MiB over the same span
    assert at_200k["string_overflow"] == 200_000 - 1000


@pytest.mark.slow
def test_ever_new_feature_names_keep_memory_and_snapshots_flat() -> None:
    rows = {
        row["events"]: row
        for row in _bench(
            "--events", "40000", "--case", "names", env={"DRIFTLINE_ENGINE__MAX_INPUTS": "2000"}
        )
    }
    at_10k, at_40k = rows[10_000], rows[40_000]
    assert at_40k["snapshot_bytes"] <= 1.2 * at_10k["snapshot_bytes"]
    assert at_40k["rss_mib"] - at_10k["rss_mib"] < 20
    assert at_40k["features_dropped"] == 40_000 - (2000 - 2)
