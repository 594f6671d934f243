"""The ``driftline`` command line. ``driftline --help`` lists the commands, each has ``--help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from learners.config import ConfigError

EPILOG = """\
examples:
  driftline datasets                                   list the built-in streams
  driftline backtest --dataset sea-abrupt --out out    replay one, write summary + report.png
  driftline backtest --file events.jsonl --true-drifts 5000,12000
  driftline backtest --file data.csv --target label --time-column ts
  driftline snapshots verify out/model.snapshot        check a snapshot's signature
  driftline serve                                      the live worker on Kafka
  driftline produce --dataset sea-abrupt --rate 500    events into Kafka
  driftline alerts --from-beginning                    follow the drift alerts

configuration: --config FILE (TOML) or $DRIFTLINE_CONFIG, then DRIFTLINE_<SECTION>__<KEY>=value
overrides, e.g. DRIFTLINE_MODEL__NAME=hoeffding_tree DRIFTLINE_POLICY__ACTION=reset.
Snapshots are signed with $DRIFTLINE_SNAPSHOT_KEY (or the file in $DRIFTLINE_SNAPSHOT_KEY_FILE).
"""


class UsageError(Exception):
    """A mistake in how the command was called: printed plainly, exit status 2."""


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated event indices, got {text!r}"
        ) from None


N = TypeVar("N", int, float)


def _bounded(
    convert: Callable[[str], N], accept: Callable[[N], bool], expected: str
) -> Callable[[str], N]:
    """An argparse ``type=`` that converts, then checks the range, with one clear message."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
            if accept(value):
                return value
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")

    return parse


positive_int = _bounded(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _bounded(float, lambda v: 0 < v < float("inf"), "a positive number")


def source_from_args(args: argparse.Namespace) -> Any:
    """The source named by the arguments of :func:`stream.sources.add_source_arguments`."""
    from stream.sources import open_source

    try:
        return open_source(
            dataset=args.dataset,
            file=args.file,
            target=args.target,
            id_column=args.id_column,
            time_column=args.time_column,
            limit=args.limit,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Any:
    from stream.settings import load_settings

    return load_settings(getattr(args, "config", None))


def _snapshot_key(config: Any) -> bytes | None:
    from learners.snapshot import SnapshotError, load_key

    try:
        return load_key(config.snapshot.key_file if config else "")
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- datasets


def cmd_datasets(args: argparse.Namespace) -> int:
    from stream.datasets import DATASETS

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


# --------------------------------------------------------------------------- backtest


def _print_summary(summary: dict[str, Any], out: str | None) -> None:
    from stream.summary_text import summary_lines

    print("\n".join(summary_lines(summary, out)))


def cmd_backtest(args: argparse.Namespace) -> int:
    from stream.backtest import run_backtest

    settings = _settings(args)
    if args.batch_size:
        import dataclasses

        settings = dataclasses.replace(
            settings, engine=dataclasses.replace(settings.engine, batch_size=args.batch_size)
        )
    source = source_from_args(args)
    if args.true_drifts is not None:
        source.true_drifts = args.true_drifts
    summary = run_backtest(
        settings,
        source,
        out_dir=args.out,
        label_delay=args.label_delay,
        max_delay=args.max_delay,
        snapshot_key=_snapshot_key(settings),
        show_progress=not args.json,
    )
    if args.json:
        summary.pop("config", None)
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        _print_summary(summary, args.out)
    return 0


# --------------------------------------------------------------------------- config


def cmd_config(args: argparse.Namespace) -> int:
    from learners.config import to_mapping

    settings = _settings(args)
    print(orjson.dumps(to_mapping(settings), option=orjson.OPT_INDENT_2).decode())
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from stream.sources import add_source_arguments

    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming online learning and drift detection: River models on Kafka "
        "streams, and offline backtests through the very same engine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    p = sub.add_parser("datasets", help="list the built-in streams (with their true drift points)")
    p.add_argument("--json", action="store_true", help="print JSON")
    commands["datasets"] = cmd_datasets

    p = sub.add_parser(
        "backtest",
        help="replay a stream through the engine and score it",
        description="Replay a historical or built-in stream through the same engine the live "
        "service runs (predict, then learn), and report the prequential metric, the drift "
        "alerts and how they match the true drift points.",
        epilog="examples:\n  driftline backtest --dataset sea-abrupt --out out\n"
        "  driftline backtest --file events.jsonl --true-drifts 5000 --label-delay 100\n"
        "  driftline backtest --file data.csv --target y --id-column id --time-column ts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p)
    p.add_argument(
        "--true-drifts",
        type=_int_list,
        metavar="I1,I2,...",
        help="known drift points (event indices) to score detection against",
    )
    p.add_argument(
        "--max-delay",
        type=positive_int,
        default=2500,
        metavar="N",
        help="an alert more than N events after a drift is not its detection (2500)",
    )
    p.add_argument(
        "--label-delay",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="labels arrive N events after their event (default 0: inline)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help="micro-batch size (overrides engine.batch_size)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write summary.json, predictions/alerts/dead_letter .jsonl and report.png",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    commands["backtest"] = cmd_backtest

    p = sub.add_parser("config", help="print the effective settings (defaults + file + env)")
    commands["config"] = cmd_config

    from stream import alerts_cli, app, kafka_clients, produce, replay, snapshots_cli

    kafka_clients.register(sub, commands)
    produce.register(sub, commands)
    replay.register(sub, commands)
    alerts_cli.register(sub, commands)
    snapshots_cli.register(sub, commands)
    app.register(sub, commands)  # driftline serve
    parser.set_defaults(_commands=commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args._commands[args.command](args)
    except ConfigError as exc:
        print(f"driftline: configuration error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"driftline {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("driftline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
