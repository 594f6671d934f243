"""``driftline datasets``: the built-in streams, listed or exported as JSONL."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import orjson

from driftline.cli.args import positive_int, wrap
from driftline.errors import UsageError


def cmd_datasets(args: argparse.Namespace) -> int:
    from driftline.offline.datasets import DATASETS

    if args.export is not None:
        return export_dataset(args)
    for option, value in (("--limit", args.limit), ("--seed", args.seed), ("--out", args.out)):
        if value is not None:
            raise UsageError(f"{option} goes with --export NAME")
    if args.json:
        rows = [
            {
                "name": d.name,
                "task": d.task,
                "size": d.size,
                "drift_kind": d.drift_kind,
                "true_drifts": list(d.true_drifts),
                "description": d.description,
            }
            for d in DATASETS.values()
        ]
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{'name':<20} {'task':<15} {'events':>7}  {'drift':<8} {'true drifts':<20} description")
    for d in DATASETS.values():
        drifts = ",".join(map(str, d.true_drifts)) or "-"
        print(
            f"{d.name:<20} {d.task:<15} {d.size:>7}  {d.drift_kind:<8} {drifts:<20} {d.description}"
        )
    return 0


def _open_for_writing(out: str) -> Any:
    """``out`` opened to write bytes: stdout for ``-``, compressed for ``.gz``/``.bz2``/``.xz``."""
    if out == "-":
        sys.stdout.flush()  # anything printed before goes first
        return sys.stdout.buffer
    if out.endswith(".gz"):
        import gzip

        return gzip.open(out, "wb")
    if out.endswith(".bz2"):
        import bz2

        return bz2.open(out, "wb")
    if out.endswith(".xz"):
        import lzma

        return lzma.open(out, "wb")
    return open(out, "wb")  # closed by the caller (not when it is stdout)


def export_dataset(args: argparse.Namespace) -> int:
    """``driftline datasets --export NAME --out FILE``: one event-contract object per line, the
    very events ``driftline backtest --dataset NAME`` (same ``--limit`` / ``--seed``) runs on."""
    from pathlib import Path

    from driftline.offline.datasets import get_dataset

    if args.json:
        raise UsageError("--json lists the datasets; --export writes JSONL already")
    if args.out is None:
        raise UsageError("--export needs --out FILE.jsonl (or --out - for stdout)")
    try:
        dataset = get_dataset(args.export)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # As `backtest --dataset`: at most the dataset's size, and the true drifts inside it.
    total = dataset.size if args.limit is None else min(args.limit, dataset.size)
    seed = 42 if args.seed is None else args.seed
    drifts = [d for d in dataset.true_drifts if d < total]
    if args.out != "-" and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a folder; name the .jsonl file to write")
    handle = _open_for_writing(args.out)
    try:
        chunk: list[bytes] = []
        for event in dataset.events(limit=total, seed=seed):
            chunk.append(orjson.dumps(event, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
            if len(chunk) >= 1000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))
        handle.flush()
    finally:
        if handle is not sys.stdout.buffer:
            handle.close()
    if args.out != "-":
        again = f" --true-drifts {','.join(map(str, drifts))}" if drifts else ""
        if dataset.drift_width:
            again += f"  (gradual: each change spreads over {dataset.drift_width} events)"
        print(
            f"wrote {total:,} events of {dataset.name} (seed {seed}) to {args.out}; "
            f"backtest it with: driftline backtest --file {args.out}{again}",
            file=sys.stderr,
        )
    return 0


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline datasets`` to the command line."""
    p = sub.add_parser(
        "datasets",
        help="list the built-in streams (with their true drift points), or export one as JSONL",
        description=wrap(
            "List the built-in streams: synthetic streams from River with known drift points, "
            "for `driftline backtest --dataset NAME`. With --export NAME, write one of them as "
            "JSONL in the event contract (one event per line), the very events a backtest of "
            "--dataset NAME runs on, to try `driftline produce`, `replay` or `backtest --file`."
        ),
        epilog="examples:\n"
        "  driftline datasets                                  the table\n"
        "  driftline datasets --json                           the same as JSON\n"
        "  driftline datasets --export sea-abrupt --limit 8000 --out sea.jsonl\n"
        "  driftline backtest --file sea.jsonl --true-drifts 5000\n"
        "  driftline replay --file sea.jsonl --speed 100       into Kafka, 100x its pace\n"
        "  driftline datasets --export friedman-drift --out - | head -3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--export", metavar="NAME", help="write the dataset NAME as JSONL (needs --out)")
    p.add_argument(
        "--out", metavar="FILE", help="--export: the .jsonl file to write (.gz too; - for stdout)"
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="--export: the first N events (default: all of them)",
    )
    p.add_argument("--seed", type=int, metavar="S", help="--export: the dataset's seed (42)")
    commands["datasets"] = cmd_datasets
