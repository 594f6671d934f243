#!/usr/bin/env python
"""Engine speed and memory against a bare River loop, on the same seeded stream, in one run.

    .venv/bin/python scripts/bench_engine.py            # full run (~2-3 min on 2 cores)
    .venv/bin/python scripts/bench_engine.py --quick    # smaller, for a smoke test

Baseline: a hand-written prequential loop, ``StandardScaler | LogisticRegression``, ADWIN on the
0/1 error and a running accuracy (predict_one, score, detector update, learn_one). The engine runs
the same model and the same detector (the other monitors, the guard, snapshots and the rolling
metric off, so both loops do the same work); it also validates each event and emits a prediction
record. Each measurement is repeated and the median is quoted; timings are interleaved so machine
noise hits both sides alike, and they are CPU time of this process (time.process_time), not wall
time: other work on a shared machine then slows both sides far less unevenly. River's
micro-batch path alone (a frame, ``predict_proba_many`` and ``learn_many`` per 1,000 events) is
timed too: the floor under the engine's micro-batch mode. Memory: resident set size while the
default-config engine processes ``--memory-events`` events, sampled every 10%.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from river import drift, linear_model, metrics, preprocessing

import driftline.learners.batch  # noqa: F401  (imports pandas now, not inside the first timing)
from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.offline.datasets import get_dataset

#: The ARF challenger case runs on the first events only: ARF learns ~2k events/s.
ARF_EVENTS = 5_000

SAME_WORK = {
    "model": {"name": "linear"},
    "detectors": {
        "error": {"kind": "adwin", "warning": False, "warmup": 0},
        "prediction": {"kind": "none"},
        "features": {"kind": "none"},
    },
    "guard": {"enabled": False},
    "policy": {"action": "none"},
    "fallback": {"warmup_labels": 0},
    "engine": {"rolling_window": 0},
    "snapshot": {"every_events": 0},
}


#: ``--breakdown``: the default config with one part turned off (only to see what it costs).
BREAKDOWN: dict[str, dict[str, Any]] = {
    "no challengers (policy none)": {"policy": {"action": "none"}},
    "no guard": {"guard": {"enabled": False}},
    "no feature monitors": {"detectors": {"features": {"kind": "none"}}},
    "no prediction monitor": {"detectors": {"prediction": {"kind": "none"}}},
    "no rolling metric": {"engine": {"rolling_window": 0}},
}


def bare_loop(events: list[dict[str, Any]]) -> float:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    detector = drift.ADWIN(delta=0.01)  # the engine's default for the error signal
    accuracy = metrics.Accuracy()
    started = time.process_time()
    for event in events:
        x, y = event["x"], event["y"]
        y_pred = model.predict_one(x)
        accuracy.update(y, y_pred)
        detector.update(0.0 if y_pred == y else 1.0)
        _ = detector.drift_detected
        model.learn_one(x, y)
    return time.process_time() - started


def bare_batches(events: list[dict[str, Any]], batch: int) -> float:
    """River's micro-batch path alone: per batch a frame, ``predict_proba_many`` and
    ``learn_many`` (no validation, no records, no metric, no detector): the floor under the
    engine's micro-batch mode."""
    import pandas as pd

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    started = time.process_time()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        frame = pd.DataFrame.from_records([event["x"] for event in chunk])
        model.predict_proba_many(frame)
        model.learn_many(frame, pd.Series([event["y"] for event in chunk]))
    return time.process_time() - started


def engine_loop(events: list[Any], overrides: dict[str, Any], batch: int = 1) -> float:
    engine = Engine(from_mapping(LearningConfig, overrides, ""))
    outputs = engine.outputs
    started = time.process_time()
    if batch == 1:
        for offset, event in enumerate(events):
            engine.process(event, offset)
            outputs.predictions.clear()  # a driver drains outputs; don't let them pile up
    else:
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            engine.process_batch(chunk, list(range(start, start + len(chunk))))
            outputs.predictions.clear()
    return time.process_time() - started


def with_batch(overrides: dict[str, Any], batch: int) -> dict[str, Any]:
    return {**overrides, "engine": {**overrides["engine"], "batch_size": batch}}


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_run(n_events: int) -> list[tuple[int, float]]:
    """RSS while the default-config engine (all monitors, guard, snapshots) runs n events."""
    engine = Engine(LearningConfig())
    dataset = get_dataset("sea-stationary")
    stream = itertools.chain.from_iterable(dataset.events(seed=seed) for seed in itertools.count())
    samples = []
    step = max(1, n_events // 10)
    for offset, event in enumerate(itertools.islice(stream, n_events)):
        event["id"] = offset  # ids repeat across seeds; keep them unique
        engine.process(event, offset)
        engine.outputs.drain()
        if (offset + 1) % step == 0:
            gc.collect()
            samples.append((offset + 1, rss_mib()))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per timing (50000)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per timing (5)")
    parser.add_argument(
        "--memory-events", type=int, default=1_000_000, help="events for the memory run (1M)"
    )
    parser.add_argument("--quick", action="store_true", help="10k events, 3 repeats, 100k memory")
    parser.add_argument(
        "--dataset",
        default="sea-abrupt",
        help="seeded dataset of driftline.offline.datasets the timings run on (sea-abrupt: 3 "
        "features; hyperplane-stationary: the 8 features of bench_live.py)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the default config with one part off at a time (challengers, guard, "
        "feature monitors, prediction monitor, rolling metric)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="time only the cases whose name contains TEXT (repeatable; the bare loop and the "
        "per-record engine always run, as the ratios' baselines)",
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeats, args.memory_events = 10_000, 3, 100_000

    try:
        dataset = get_dataset(args.dataset)
    except ValueError as exc:
        parser.error(str(exc))
    events = list(dataset.events(limit=args.events))
    import orjson

    raw = [orjson.dumps(e) for e in events]
    # The stream held in memory here (a live worker holds none) would be walked by every full
    # collection, and the engine, allocating more than the bare loop, triggers more of them:
    # frozen, like everything the live worker built before its first event (driftline.live.app).
    gc.collect()
    gc.freeze()
    cases: dict[str, Callable[[], float]] = {
        "bare River loop": lambda: bare_loop(events),
        "engine, per record (dict in)": lambda: engine_loop(events, SAME_WORK),
        "engine, per record (JSON bytes in)": lambda: engine_loop(raw, SAME_WORK),
        "engine, micro-batch 100": lambda: engine_loop(events, with_batch(SAME_WORK, 100), 100),
        "engine, micro-batch 1000": lambda: engine_loop(events, with_batch(SAME_WORK, 1000), 1000),
        "River's *_many alone, batches of 1000": lambda: bare_batches(events, 1000),
        "engine, default config (all monitors, guard)": lambda: engine_loop(
            events, {"snapshot": {"every_events": 0}}
        ),
        # The cost of champion/challenger: a challenger predicts and learns every labelled event.
        "default config + a linear challenger": lambda: engine_loop(
            events, {"snapshot": {"every_events": 0}, "policy": {"challengers": ["linear"]}}
        ),
        "default config + an ARF challenger": lambda: engine_loop(
            events[:ARF_EVENTS],
            {
                "snapshot": {"every_events": 0},
                "policy": {"challengers": ["adaptive_random_forest"]},
            },
        ),
    }
    if args.only:
        keep = ("bare River loop", "engine, per record (dict in)")
        cases = {
            name: case
            for name, case in cases.items()
            if name in keep or any(text in name for text in args.only)
        }
    if args.breakdown:
        # Where the default config's time goes: the default with one part off at a time.
        default = {"snapshot": {"every_events": 0}}
        for label, off in BREAKDOWN.items():
            overrides = {**default, **off}
            cases[f"default config, {label}"] = lambda o=overrides: engine_loop(events, o)
    sizes = {name: args.events for name in cases}
    if "default config + an ARF challenger" in sizes:
        sizes["default config + an ARF challenger"] = min(ARF_EVENTS, args.events)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    print(f"{args.events:,} events of {args.dataset}, {args.repeats} repeats, medians", flush=True)
    for _ in range(args.repeats):
        for name, case in cases.items():
            gc.collect()
            timings[name].append(case())
    median = {name: statistics.median(values) for name, values in timings.items()}
    bare = median["bare River loop"]
    per_record = median["engine, per record (dict in)"]
    print(f"{'case':<46} {'events/s':>10} {'time / bare':>12} {'speed / per-record':>19}")
    for name, seconds in median.items():
        # Time ratios compare the same number of events; the ARF case runs fewer (it is ~50x slower).
        scale = args.events / sizes[name]
        rate = sizes[name] / seconds
        print(
            f"{name:<46} {rate:>10,.0f} {seconds * scale / bare:>11.2f}x "
            f"{per_record / (seconds * scale):>18.2f}x"
        )
    print(f"\nper-record engine time / bare loop: {per_record / bare:.2f}x (target <= 1.10x)")
    if "engine, default config (all monitors, guard)" in median:
        default = median["engine, default config (all monitors, guard)"]
        print(f"default config time / bare loop: {default / bare:.2f}x (target <= 2x)")
    if "engine, micro-batch 1000" in median:
        batch = median["engine, micro-batch 1000"]
        print(
            f"micro-batch 1000 speed / per-record engine: {per_record / batch:.2f}x (target >= 3x)"
        )
    floor = median.get("River's *_many alone, batches of 1000")
    if floor is not None:
        allowed = per_record / 3 / args.events * 1e6
        spent = floor / args.events * 1e6
        print(
            f"  3x the per-record engine allows {allowed:.1f} us per event; River's *_many path "
            f"alone (frame, predict_proba_many, learn_many) takes {spent:.1f} us, leaving "
            f"{allowed - spent:.1f} us for validation, records, the metric and the detector"
        )
    if args.memory_events:
        print(f"\nmemory, default config, {args.memory_events:,} events (RSS MiB):", flush=True)
        samples = memory_run(args.memory_events)
        print("  " + "  ".join(f"{n // 1000}k:{mib:.1f}" for n, mib in samples))
        first, last = samples[0][1], samples[-1][1]
        print(f"  growth after the first 10%: {last - first:+.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
