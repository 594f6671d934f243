#!/usr/bin/env python
"""What a thread's sleep costs on this machine: the same River work, done without pause and done
in bursts with a sleep between them (no Kafka, no driftline: a property of the machine).

    .venv/bin/python scripts/bench_wakeups.py            # ~30 s
    .venv/bin/python scripts/bench_wakeups.py --quick    # ~5 s

A paced live worker (``bench_live.py``'s latency runs) gets a few dozen events per fetch and
sleeps between fetches; on a backlog it never sleeps. Where waking up is expensive (a virtual
machine whose idle CPU halts, its caches taken by other work meanwhile), every event of a burst
costs more than the same event in a continuous run, and the paced worker's CPU per event is
higher than its cost on a backlog. Four figures, medians of ``--repeats``:

* CPU per wake: a thread that waits on ``epoll`` for 5 ms, again and again, with no work;
* the bare River loop (``StandardScaler | LogisticRegression``, predict then learn, the 8
  features of ``bench_live.py``) per event, continuous: the baseline;
* the same loop in bursts of ``--burst`` events, a 5 ms sleep after each: its time per event,
  and the ratio to the baseline;
* the same bursts, a 5 ms busy wait (no sleep) after each: the control (the CPU never idles).
"""

from __future__ import annotations

import argparse
import select
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from river import linear_model, preprocessing

from driftline.offline.datasets import get_dataset

PAUSE_S = 0.005  # bench_live.py's generator hands over a batch every 5 ms


def cpu_per_wake(wakes: int) -> float:
    """Thread CPU (us) per return from a 5 ms ``epoll`` wait with nothing to do."""
    poller = select.epoll()
    started = time.thread_time()
    for _ in range(wakes):
        poller.poll(PAUSE_S)
    return (time.thread_time() - started) / wakes * 1e6


def sleep() -> None:
    time.sleep(PAUSE_S)


def busy_wait() -> None:
    end = time.perf_counter() + PAUSE_S
    while time.perf_counter() < end:
        pass


def river_loop(events: list[dict[str, Any]], burst: int, pause: Callable[[], None] | None) -> float:
    """Time per event (us) of predict-then-learn, counting only the work (not the pauses)."""
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    worked = 0.0
    for start in range(0, len(events), burst):
        began = time.perf_counter()
        for event in events[start : start + burst]:
            x = event["x"]
            model.predict_proba_one(x)
            model.learn_one(x, event["y"])
        worked += time.perf_counter() - began
        if pause is not None:
            pause()
    return worked / len(events) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per run (10000)")
    parser.add_argument("--burst", type=int, default=40, help="events per burst (40)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per case (5)")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeats = 2_000, 1
    if args.events < 1 or args.burst < 1 or args.repeats < 1:
        parser.error("--events, --burst and --repeats must be at least 1")
    events = list(get_dataset("hyperplane-stationary").events(limit=args.events))
    cases: dict[str, Callable[[], float]] = {
        "continuous": lambda: river_loop(events, len(events), None),
        f"bursts of {args.burst}, sleep 5 ms": lambda: river_loop(events, args.burst, sleep),
        f"bursts of {args.burst}, busy wait 5 ms": lambda: river_loop(
            events, args.burst, busy_wait
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    wakes: list[float] = []
    for _ in range(args.repeats):  # interleaved: machine noise hits every case alike
        for name, case in cases.items():
            times[name].append(case())
        wakes.append(cpu_per_wake(200))
    print(f"{args.events:,} events, {args.repeats} repeat(s), medians")
    print(f"CPU per wake from a 5 ms epoll wait (no work): {statistics.median(wakes):.1f} us")
    base = statistics.median(times["continuous"])
    print(f"{'River loop, predict then learn':<40} {'us/event':>9} {'vs continuous':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<38} {median:>9.1f} {median / base:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
