#!/usr/bin/env python
"""Slices ([slices] by): detection delay, false alarms and the engine's speed, in one run.

    .venv/bin/python scripts/bench_slices.py            # full run (~2 min on 2 cores)
    .venv/bin/python scripts/bench_slices.py --quick    # smaller, for a smoke test

* **Delay**: y = x1 + x2 > 1 with 5% label noise, five regions; at event 6,000 the concept of
  ``east`` (10% of the traffic) reverses. Events from the change to the drift record naming
  ``{"region": "east"}``, and any drift record naming another slice, per seed (policy none).
* **False alarms**: the same stream with no change, 50,000 events, slices on ``region`` (5
  values), ``store`` (50 integer values: 20 admitted, the rest in ``__other__``) and ``vip`` (a
  boolean): 28 slice monitors; confirmed drifts of any signal, per seed, with the default policy.
* **Speed**: events/s of the default-config engine on that stream without slices and with those
  three slicing features, interleaved repeats, median CPU time (time.process_time), and the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine

REGIONS = ("north", "south", "west", "centre", "east")
WEIGHTS = (0.225, 0.225, 0.225, 0.225, 0.10)
CHANGE_AT = 6000
BY = ["region", "store", "vip"]


def stream(n: int, seed: int, change_at: int | None) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(n):
        region = rng.choices(REGIONS, WEIGHTS)[0]
        x1, x2 = rng.random(), rng.random()
        y = (x1 + x2 > 1.0) != (rng.random() < 0.05)
        if change_at is not None and i >= change_at and region == "east":
            y = not y
        x = {"x1": x1, "x2": x2, "region": region, "store": rng.randrange(50)}
        x["vip"] = rng.random() < 0.2
        yield {"id": i, "x": x, "y": y}


def run(config: dict[str, Any], events: list[dict[str, Any]]) -> tuple[Engine, list, float]:
    engine = Engine(from_mapping(LearningConfig, config))
    alerts: list[dict[str, Any]] = []
    started = time.process_time()
    for offset, event in enumerate(events):
        engine.process(event, offset)
        out = engine.outputs
        out.predictions.clear()  # a driver drains outputs; don't let them pile up
        if out.alerts:
            alerts += out.alerts
            out.alerts.clear()
    return engine, alerts, time.process_time() - started


def detections(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["kind"] in ("drift", "update")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = range(1, 3 if args.quick else 6)
    stationary_n = 10_000 if args.quick else 50_000
    speed_n, repeats = (5_000, 3) if args.quick else (20_000, 5)

    print(f"detection delay: east (10% of the traffic) reverses at event {CHANGE_AT}")
    delays = []
    for seed in seeds:
        events = list(stream(CHANGE_AT + 10_000, seed, CHANGE_AT))
        config = {"slices": {"by": ["region"]}, "policy": {"action": "none"}}
        _, alerts, _ = run(config, events)
        sliced = [a for a in detections(alerts) if a.get("slice")]
        east = [a["index"] - CHANGE_AT for a in sliced if a["slice"] == {"region": "east"}]
        others = [a["slice"] for a in sliced if a["slice"] != {"region": "east"}]
        delays += east[:1]
        print(
            f"  seed {seed}: east named after {east[:1] or 'never'} events; other slices {others}"
        )
    if delays:
        print(f"  delay: mean {statistics.mean(delays):.0f}, max {max(delays)} events")

    print(f"false alarms: stationary, {stationary_n:,} events, slices on {', '.join(BY)}")
    total = 0
    for seed in seeds:
        events = list(stream(stationary_n, seed, None))
        engine, alerts, _ = run({"slices": {"by": BY}}, events)
        found = detections(alerts)
        total += len(found)
        monitors = sum(len(values) for values in engine.slices.slices.values())  # type: ignore[union-attr]
        print(
            f"  seed {seed}: {len(found)} drift records {[a['signal'] for a in found]}; "
            f"{monitors} slices; alarms dropped as not significant: "
            f"{engine.slices.not_significant}"  # type: ignore[union-attr]
        )
    print(f"  {total} false drift records in {stationary_n * len(seeds):,} events")

    print(f"speed: default config, {speed_n:,} events, median of {repeats} interleaved runs")
    events = list(stream(speed_n, 1, None))
    times: dict[str, list[float]] = {"without slices": [], "with slices": []}
    for _ in range(repeats):
        times["without slices"].append(run({}, events)[2])
        times["with slices"].append(run({"slices": {"by": BY}}, events)[2])
    rates = {name: speed_n / statistics.median(t) for name, t in times.items()}
    for name, rate in rates.items():
        print(f"  {name:15} {rate:10,.0f} events/s")
    print(f"  ratio with/without: {rates['with slices'] / rates['without slices']:.3f}")


if __name__ == "__main__":
    main()
