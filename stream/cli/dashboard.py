"""``driftline dashboard``: the command line of the dashboard (its parser and what it runs).

Importing this module imports no web server or Kafka client: ``driftline --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from driftline.cli.args import (
    add_bootstrap_argument,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)


def _port(text: str) -> int:
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if 0 < value < float("inf"):
        return value
    raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")


def _count(text: str) -> int:
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline dashboard`` to the command line."""
    p = sub.add_parser(
        "dashboard",
        help="a web page of the live service: metric, events/s, lag, incidents, models",
        description=wrap(
            "Follow the output topics (predictions, drift alerts, snapshots, dead letters) of "
            "the consumer group service.app_id and serve a page at / that shows every worker of "
            "the group at once: the running prequential metric over time per partition and "
            "overall, events/s and lag, model versions and promotions, incidents with the "
            "signals that moved, drifted features and dead letters by reason. The page updates "
            "by itself; memory is bounded (a window of points per partition, capped lists). It "
            "reads without joining the workers' group."
        ),
        epilog=(
            "examples:\n  driftline dashboard                       http://127.0.0.1:8050/\n"
            "  driftline dashboard --host 0.0.0.0 --port 8080 --bootstrap kafka:9092"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=_port, default=8050, help="port of the page (default 8050)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    p.add_argument(
        "--bucket",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds of record time per point of the charts (default 1)",
    )
    p.add_argument(
        "--history",
        type=_count,
        default=20_000,
        metavar="N",
        help="predictions read back per partition at start (default 20000)",
    )
    add_bootstrap_argument(p)
    commands["dashboard"] = run


@reports_kafka_errors
def run(args: argparse.Namespace) -> int:
    from driftline.live.dashboard.server import serve

    try:
        return serve(
            settings_from_args(args),
            host=args.host,
            port=args.port,
            bucket_s=args.bucket,
            history=args.history,
        )
    except OSError as exc:  # the port is taken, or the address is not ours
        print(
            f"driftline dashboard: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
