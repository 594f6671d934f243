"""The drift loop on streams like a user's: alerts a person would act on, and whether adapting paid.

For each stream, the default driftline backtest beside, on the same events in the same order:

* its no-adaptation baseline (same model, no drift action: measured inside the backtest);
* plain River: ``StandardScaler | LogisticRegression`` (``LinearRegression`` for regression) in a
  prequential loop, and the same loop reset on every ADWIN drift of its error (River's usual recipe);
* the no-change classifier (predict the previous label) / regressor (the previous value).

Synthetic streams with known drift points score delays and false alarms; real streams (the Weather
data in ``../shared/data`` and River's bundled sets) count the drift records a subscriber would get.

Usage: .venv/bin/python scripts/bench_drift.py [--streams a,b,...] [--markdown] [--arf]
       (DRIFTLINE_* variables change the driftline config, as for the CLI)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from river import drift, linear_model, multiclass, preprocessing

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from driftline.learners.engine import encode_features  # noqa: E402
from driftline.offline.backtest import run_backtest  # noqa: E402
from driftline.offline.datasets import get_dataset  # noqa: E402
from driftline.offline.sources import Source, open_source  # noqa: E402
from driftline.settings import load_settings  # noqa: E402

WEATHER = ROOT.parent / "shared" / "data" / "weather.csv"
SYNTHETIC = (
    "hyperplane-stationary",
    "sea-stationary",
    "sea-abrupt",
    "sea-gradual",
    "agrawal-abrupt",
    "agrawal-gradual",
    "stagger-abrupt",
    "rbf-abrupt",
)
REAL = ("weather", "river:Shuttle", "river:Bananas", "river:Phishing", "river:ImageSegments")


def _plain(value: Any) -> Any:
    if isinstance(value, bool | str):
        return value
    return float(value)


def _river_events(name: str) -> tuple[list[dict[str, Any]], str]:
    from river import datasets

    dataset = getattr(datasets, name)()
    events = []
    for i, (x, y) in enumerate(dataset):
        label = y if isinstance(y, bool | str) else int(y) if dataset.task != "Regression" else y
        events.append({"id": i, "x": {str(k): _plain(v) for k, v in x.items()}, "y": label})
    return events, dataset.task


def load_stream(name: str) -> tuple[Source, Callable[[], Iterator[dict[str, Any]]]]:
    """The backtest source and a way to iterate the same events again (for the River loops)."""
    if name == "weather":
        source = open_source(file=str(WEATHER), target="target")
        events = list(source.items)
        return Source("weather", iter(events), len(events)), lambda: iter(events)
    if name.startswith("river:"):
        events, _ = _river_events(name.split(":", 1)[1])
        return Source(name, iter(events), len(events)), lambda: iter(events)
    ds = get_dataset(name)
    source = Source(name, ds.events(), ds.size, list(ds.true_drifts), ds.drift_width)
    return source, lambda: ds.events()


def _river_model(classification: bool, multiclass_labels: bool) -> Any:
    if not classification:
        return preprocessing.StandardScaler() | linear_model.LinearRegression()
    model: Any = linear_model.LogisticRegression()
    if multiclass_labels:
        model = multiclass.OneVsRestClassifier(model)
    return preprocessing.StandardScaler() | model


def river_arf(events: Iterator[dict[str, Any]]) -> float | None:
    """River's adaptive random forest alone (what the ARF challenger is measured against)."""
    from river import forest

    rows = [(encode_features(e["x"]), e["y"]) for e in events if e.get("y") is not None]
    if isinstance(rows[0][1], float):
        return None
    model = forest.ARFClassifier(seed=42)
    right = 0
    for x, y in rows:
        right += model.predict_one(x) == y
        model.learn_one(x, y)
    return right / len(rows)


def river_loops(events: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Plain River, static and reset-on-ADWIN, and the no-change baseline, prequentially."""
    rows = [(encode_features(e["x"]), e["y"]) for e in events if e.get("y") is not None]
    classification = isinstance(rows[0][1], bool | int | str) and not isinstance(rows[0][1], float)
    multi = len({y for _, y in rows[:2000]}) > 2 or not isinstance(rows[0][1], bool)
    static = _river_model(classification, multi)
    reset = _river_model(classification, multi)
    detector = drift.ADWIN()
    loss_static = loss_reset = loss_nochange = 0.0
    resets = 0
    previous = None
    for x, y in rows:
        for which, model in (("static", static), ("reset", reset)):
            guess = model.predict_one(x)
            err = (guess != y) if classification else abs((guess or 0.0) - y)
            if which == "static":
                loss_static += err
            else:
                loss_reset += err
                detector.update(float(err))
                if detector.drift_detected:
                    reset = _river_model(classification, multi)
                    resets += 1
            model.learn_one(x, y)
        if previous is not None:
            loss_nochange += (previous != y) if classification else abs(previous - y)
        previous = y
    n = len(rows)

    def metric(total: float, count: int) -> float:
        return 1.0 - total / count if classification else total / count

    return {
        "river_static": metric(loss_static, n),
        "river_reset": metric(loss_reset, n),
        "river_resets": resets,
        "no_change": metric(loss_nochange, n - 1),
    }


def run(name: str, arf: bool) -> dict[str, Any]:
    settings = load_settings()
    if arf:
        policy = dataclasses.replace(settings.policy, challengers=("adaptive_random_forest",))
        settings = dataclasses.replace(settings, policy=policy)
    source, again = load_stream(name)
    started = time.perf_counter()
    summary = run_backtest(settings, source, show_progress=False)
    seconds = time.perf_counter() - started
    records = summary["alerts"]
    kinds = [a["kind"] for a in records]
    incidents = (summary["detection_scores"] or {}).get("incidents") or {
        "detected": [],
        "false_alarms": None,
        "detection_delay_mean": None,
    }
    row = {
        "stream": name,
        "events": summary["events"],
        "true_drifts": len(summary["true_drifts"]),
        "drift_records": kinds.count("drift"),
        "records": len(records),
        "promotions": kinds.count("promoted"),
        # What a subscriber gets: incidents (one per change), whichever signal opened them.
        "detected": len(incidents["detected"]),
        "false_alarms": incidents["false_alarms"],
        "delay": incidents["detection_delay_mean"],
        "metric_name": summary["metric_name"],
        "metric": summary["metric"],
        "baseline": summary["baseline_metric"],
        "seconds": seconds,
    }
    row.update(river_loops(again()))
    row["river_arf"] = river_arf(again()) if arf else None
    return row


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", help="comma-separated stream names (default: all)")
    parser.add_argument(
        "--arf", action="store_true", help="add an ARF challenger (and River's ARF alone)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    names = args.streams.split(",") if args.streams else [*SYNTHETIC, *REAL]
    header = (
        "stream",
        "events",
        "drift records / all",
        "promotions",
        "true drifts found / false (incidents)",
        "mean delay",
        "metric",
        "driftline",
        "no adaptation",
        "River LR",
        "River LR reset on ADWIN",
        "no-change",
        *(("River ARF",) if args.arf else ()),
    )
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("  ".join(header))
    for name in names:
        r = run(name, args.arf)
        cells = (
            r["stream"],
            f"{r['events']:,}",
            f"{r['drift_records']} / {r['records']}",
            str(r["promotions"]),
            f"{r['detected']}/{r['true_drifts']} / {r['false_alarms']}"
            if r["true_drifts"]
            else "-",
            _fmt(r["delay"], 0),
            r["metric_name"],
            _fmt(r["metric"]),
            _fmt(r["baseline"]),
            _fmt(r["river_static"]),
            f"{_fmt(r['river_reset'])} ({r['river_resets']} resets)",
            _fmt(r["no_change"]),
            *((_fmt(r["river_arf"]),) if args.arf else ()),
        )
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
