"""The drift loop on streams the test suite does not contain: River's generators, several seeds.

On a stationary stream every drift record is a false alarm; on a stream built from concepts
switched at known points, each change should open one incident. Prints one line per stream and
seed with the drift / update / warning / promoted records, the accuracy beside the no-adaptation
baseline, and (with change points) the changes found, false alarms and mean delay, scored on
incidents as ``driftline backtest`` scores them.

Usage: .venv/bin/python scripts/bench_unseen.py [--seeds 1,2,3]
       (DRIFTLINE_* variables change the driftline config, as for the CLI)
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from river.datasets import synth

from driftline.notebook import backtest

Pair = tuple[dict[str, Any], Any]


def _records(pairs: Iterable[Pair], n: int) -> list[dict[str, Any]]:
    rows = []
    for x, y in itertools.islice(pairs, n):
        row: dict[str, Any] = {
            str(k): v if isinstance(v, str | bool) else float(v) for k, v in x.items()
        }
        row["target"] = y if isinstance(y, bool | str) else int(y)
        rows.append(row)
    return rows


def _switched(concepts: list[Iterator[Pair]], each: int) -> Iterator[Pair]:
    for concept in concepts:
        yield from itertools.islice(concept, each)


#: name -> (events, change points, the stream for a seed)
STREAMS: dict[str, tuple[int, list[int], Callable[[int], Iterator[Pair]]]] = {
    "agrawal-f1-stationary": (
        30_000,
        [],
        lambda s: iter(synth.Agrawal(classification_function=1, seed=s)),
    ),
    "rbf-3-classes-stationary": (
        30_000,
        [],
        lambda s: iter(synth.RandomRBF(seed_model=s, seed_sample=s, n_classes=3, n_features=6)),
    ),
    "sine-stationary": (30_000, [], lambda s: iter(synth.Sine(classification_function=0, seed=s))),
    "led-stationary": (20_000, [], lambda s: iter(synth.LED(seed=s, noise_percentage=0.1))),
    "mixed-abrupt": (
        20_000,
        [10_000],
        lambda s: _switched(
            [
                iter(synth.Mixed(seed=s, classification_function=0)),
                iter(synth.Mixed(seed=s + 10, classification_function=1)),
            ],
            10_000,
        ),
    ),
    "sine-abrupt": (
        30_000,
        [10_000, 20_000],
        lambda s: _switched(
            [
                iter(synth.Sine(classification_function=f, seed=s + 10 * i))
                for i, f in enumerate((0, 2, 1))
            ],
            10_000,
        ),
    ),
    "hyperplane-rotating": (
        30_000,
        [],
        lambda s: iter(
            synth.Hyperplane(seed=s, n_features=6, mag_change=0.001, noise_percentage=0.05)
        ),
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    parser.add_argument(
        "--streams", help="comma-separated names (default: all): " + ", ".join(STREAMS)
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.streams.split(",") if args.streams else list(STREAMS)
    for seed, name in itertools.product(seeds, names):
        events, changes, make = STREAMS[name]
        summary = backtest(
            _records(make(seed), events), target="target", true_drifts=changes or None
        )
        kinds = [a["kind"] for a in summary["alerts"]]
        line = (
            f"{name:26s} seed {seed}  drift {kinds.count('drift')}  update {kinds.count('update')}"
            f"  warning {kinds.count('warning')}  promoted {kinds.count('promoted')}"
            f"  accuracy {summary['metric']:.3f} (no adaptation {summary['baseline_metric']:.3f})"
        )
        if changes:
            scores = summary["detection_scores"]["incidents"]
            delay = scores["detection_delay_mean"]
            line += (
                f"  found {len(scores['detected'])}/{len(changes)}, false {scores['false_alarms']}"
                f", mean delay {'-' if delay is None else round(delay)}"
            )
        else:
            line += f"  (stationary: {kinds.count('drift')} false)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
