"""Argument types and helpers shared by the commands (one place for what each ``--option`` accepts)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from driftline.errors import UsageError


def int_list(text: str) -> list[int]:
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
    """The source named by the arguments of :func:`add_source_arguments`."""
    from driftline.offline.sources import open_source

    # engine.task = "regression" keeps labels written 0.0 / 1.0 numbers (else they are classes).
    task = settings_from_args(args).engine.task if args.file is not None else None
    try:
        return open_source(
            dataset=args.dataset,
            file=args.file,
            target=args.target,
            id_column=args.id_column,
            time_column=args.time_column,
            key_column=args.key_column,
            delimiter=args.delimiter,
            timezone=args.timezone,
            task=task,
            # Late labels are joined to their events by id: a repeated id is refused.
            unique_ids=getattr(args, "label_delay", 0) > 0,
            limit=args.limit,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def settings_from_args(args: argparse.Namespace) -> Any:
    """The settings (``--config``, ``DRIFTLINE_*``), with ``--bootstrap`` on top when given."""
    from driftline.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    bootstrap = getattr(args, "bootstrap", None)
    if bootstrap:
        kafka = dataclasses.replace(settings.kafka, bootstrap=bootstrap)
        settings = dataclasses.replace(settings, kafka=kafka)
    return settings


def snapshot_key(config: Any) -> bytes | None:
    from driftline.keys import load_key
    from driftline.learners.snapshot import SnapshotError

    try:
        return load_key(config.snapshot.key_file if config else "")
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None


def wrap(text: str) -> str:
    """A command description, wrapped for a help page whose epilog keeps its own layout."""
    import textwrap

    return textwrap.fill(text, width=88, break_on_hyphens=False)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset | --file`` with the file options, ``--limit`` and ``--seed``: one definition
    for every command that reads events (``open_source`` takes the same names)."""
    from driftline.offline.file_reading import parse_delimiter

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--dataset", metavar="NAME", help="a built-in stream (see `driftline datasets`)"
    )
    src.add_argument(
        "--file",
        metavar="PATH",
        help="JSONL (the event contract, or flat records with --target) or CSV (--target); "
        ".gz, .bz2 and .xz are read through",
    )
    parser.add_argument("--target", metavar="COLUMN", help="CSV or flat JSONL: the label column")
    parser.add_argument(
        "--id-column",
        metavar="COLUMN",
        help="the event id column (default: the row number; flat JSONL: the field id)",
    )
    parser.add_argument(
        "--time-column",
        metavar="COLUMN",
        help="event time (epoch ms or ISO-8601; without a zone: --timezone)",
    )
    parser.add_argument(
        "--key-column",
        metavar="COLUMN",
        help="the event key (per-key models with model.per_key = true; the Kafka key)",
    )
    parser.add_argument(
        "--delimiter",
        type=parse_delimiter,
        metavar="CHAR",
        help="CSV field delimiter (default: sniffed from , ; tab |)",
    )
    parser.add_argument(
        "--timezone",
        metavar="NAME",
        help="zone of times written without one, like Europe/Berlin (default UTC)",
    )
    parser.add_argument("--limit", type=positive_int, metavar="N", help="stop after N events")
    parser.add_argument("--seed", type=int, default=42, help="seed of a built-in dataset (42)")


def host_port(text: str) -> str:
    """argparse type of ``--bootstrap``: ``HOST:PORT`` (a comma-separated list is fine)."""
    for part in text.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {part!r}")
    return text


def add_bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        type=host_port,
        metavar="HOST:PORT",
        help="Kafka broker (default: kafka.bootstrap of the settings, or $DRIFTLINE_BOOTSTRAP)",
    )


def reports_kafka_errors(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Turn :class:`BrokerUnreachable`, :class:`TopicError` and any other Kafka
    client error into one line on stderr and exit status 1 (a usage error: status 2, as
    :func:`driftline.cli.main.main` does, also when that runs as ``python -m driftline.cli.main``)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from kafka.errors import KafkaError

        from driftline.live.kafka_clients import BrokerUnreachable, TopicError

        try:
            return command(args)
        except UsageError as exc:
            print(f"driftline {args.command}: {exc}", file=sys.stderr)
            return 2
        except (BrokerUnreachable, TopicError) as exc:
            print(f"driftline {args.command}: {exc}", file=sys.stderr)
        except KafkaError as exc:
            print(f"driftline {args.command}: Kafka error: {exc}", file=sys.stderr)
        return 1

    return run
