"""Bounded state: memory and snapshot size of the engine under high-cardinality input.

Feeds ``--events`` events through ``Engine.process`` (offline, dicts in, default config), each with
two numeric features, a label, and a ``user`` string that is new on every event (``--case user``)
or a numeric feature whose *name* is new on every event (``--case names``). At every checkpoint it
prints the process RSS (``VmRSS`` from ``/proc/self/status``) and the size of a signed snapshot of
the engine. The events are generated on the fly, so the RSS is the engine's, not the input list's.

Usage: .venv/bin/python scripts/bench_state.py [--events 200000] [--case user|names] [--json]
       (DRIFTLINE_* variables change the config, as for the CLI: e.g. a larger
       DRIFTLINE_ENGINE__MAX_STRING_VALUES)
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import secrets  # noqa: E402

from driftline.learners.engine import Engine  # noqa: E402
from driftline.settings import load_settings  # noqa: E402

KEY = secrets.token_bytes(32)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def events(n: int, case: str, seed: int = 0) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.uniform(0, 10), rng.uniform(0, 10)
        x: dict[str, Any] = {"a": a, "b": b}
        if case == "user":
            x["user"] = f"user-{i:08d}"
        else:
            x[f"f{i}"] = rng.random()
        yield {"id": i, "x": x, "y": a + b > 10.0}


def measure(n: int, case: str, checkpoints: list[int]) -> list[dict[str, Any]]:
    engine = Engine(load_settings(None), snapshot_key=KEY)
    rows = []
    wanted = set(checkpoints)
    gc.collect()
    rows.append({"events": 0, "rss_mib": rss_mib(), "snapshot_bytes": 0})
    for offset, event in enumerate(events(n, case)):
        engine.process(event, offset)
        engine.outputs.drain()
        if offset + 1 in wanted:
            record = engine.checkpoint()
            engine.outputs.drain()
            gc.collect()
            rows.append(
                {
                    "events": offset + 1,
                    "rss_mib": rss_mib(),
                    "snapshot_bytes": len(record["blob"]) if record else 0,
                    "string_overflow": engine.counters.get("string_overflow"),
                    "features_dropped": engine.counters.get("features_dropped"),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--case", choices=("user", "names"), default="user")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    step = max(1, args.events // 8)
    checkpoints = sorted({*range(step, args.events + 1, step), args.events})
    rows = measure(args.events, args.case, checkpoints)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"case {args.case}: {args.events:,} events")
    print(f"{'events':>9} {'RSS MiB':>9} {'snapshot KiB':>13} {'overflow':>9} {'dropped':>8}")
    for row in rows:
        print(
            f"{row['events']:>9,} {row['rss_mib']:>9.1f} {row['snapshot_bytes'] / 1024:>13.1f}"
            f" {row.get('string_overflow') or 0:>9,} {row.get('features_dropped') or 0:>8,}"
        )


if __name__ == "__main__":
    main()
