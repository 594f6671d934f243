"""``driftline predict``: predict with a signed model snapshot (a backtest's ``model.snapshot``).

The snapshot is verified before anything is unpickled (a pickled model is code), then its engine
predicts each event of a file or built-in dataset, one prediction record per line, in the same
shape as the live ``predictions`` topic. Labels in the events are not learned from: this is the
model as the snapshot has it. To go on learning, start the live worker from the snapshot:
``driftline serve --warm-start model.snapshot``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _without_label(item: Any) -> Any:
    """The event with its label taken off, so that predicting never learns."""
    if isinstance(item, bytes | str):
        try:
            item = orjson.loads(item)
        except orjson.JSONDecodeError:
            return item  # the engine dead-letters it with the reason
    if isinstance(item, dict) and "y" in item:
        item = {k: v for k, v in item.items() if k != "y"}
    return item


def load_warm_engine(path: str, settings: Any, key: bytes | None) -> Any:
    """The engine of a verified snapshot file, for a stream it has not seen. Raises
    ``driftline.cli.main.UsageError`` with one line when the file is missing or does not verify."""
    from driftline.errors import UsageError
    from driftline.learners.engine import Engine
    from driftline.learners.snapshot import SnapshotError

    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--snapshot {path}: {exc.strerror or exc}") from None
    try:
        return Engine.warm_start(blob, key, settings)
    except SnapshotError as exc:
        raise UsageError(f"{path}: {exc}") from None


def cmd_predict(args: argparse.Namespace) -> int:
    from driftline.cli.args import settings_from_args, snapshot_key, source_from_args

    settings = settings_from_args(args)
    key = snapshot_key(settings)
    engine = load_warm_engine(args.snapshot, settings, key)
    source = source_from_args(args)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    rejected = 0
    try:
        for offset, item in enumerate(source.items):
            engine.process(_without_label(item), offset)
            drained = engine.outputs.drain()
            rejected += len(drained.dead_letters)
            if drained.predictions:
                out.write(
                    b"".join(
                        orjson.dumps(p, option=JSON_OPTIONS) + b"\n" for p in drained.predictions
                    )
                )
    finally:
        if args.out:
            out.close()
        else:
            out.flush()
    events = engine.counters["events"]
    print(
        f"driftline predict: {events - rejected:,} predictions from model version "
        f"{engine.header()['model_version']} ({rejected:,} events rejected)",
        file=sys.stderr,
    )
    return 0


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    from driftline.cli.args import add_source_arguments

    p = sub.add_parser(
        "predict",
        help="predict with a signed model snapshot (e.g. a backtest's model.snapshot)",
        description="Verify a model snapshot (with $DRIFTLINE_SNAPSHOT_KEY, as it was signed), "
        "then write one prediction record per event as JSON lines. Labels are not learned "
        "from. The settings must name the model the snapshot holds.",
        epilog="examples:\n"
        "  DRIFTLINE_SNAPSHOT_KEY=... driftline backtest --dataset agrawal-abrupt --out out\n"
        "  DRIFTLINE_SNAPSHOT_KEY=... driftline predict --snapshot out/model.snapshot "
        "--file new.jsonl --out predictions.jsonl\n"
        "  DRIFTLINE_SNAPSHOT_KEY=... driftline serve --warm-start out/model.snapshot",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--snapshot", required=True, metavar="FILE", help="the signed snapshot file")
    add_source_arguments(p)
    p.add_argument("--out", metavar="FILE", help="write the predictions here (default: stdout)")
    commands["predict"] = cmd_predict
