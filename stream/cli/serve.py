"""``driftline serve``: the live worker in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from driftline.errors import UsageError


def cmd_serve(args: argparse.Namespace) -> int:
    from driftline.keys import KEY_ENV, KEY_FILE_ENV, load_key
    from driftline.learners.snapshot import SnapshotError
    from driftline.live.app import serve
    from driftline.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    try:
        key = load_key(settings.snapshot.key_file)
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None
    if key is None:
        raise UsageError(
            f"no snapshot key: set ${KEY_ENV} (or ${KEY_FILE_ENV}, or snapshot.key_file) to a "
            "secret of 32 random bytes or more (`driftline snapshots keygen` makes one); the "
            "worker signs its snapshots with it and refuses to load any that do not verify"
        )
    if args.warm_start:
        settings = dataclasses.replace(
            settings, service=dataclasses.replace(settings.service, warm_start=args.warm_start)
        )
    if settings.service.warm_start:
        from driftline.cli.predict import load_warm_engine

        load_warm_engine(settings.service.warm_start, settings, key)  # refused now, not later
    return serve(settings, key, loglevel=args.loglevel)


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline serve`` to the CLI's sub-command parser."""
    p = sub.add_parser(
        "serve",
        help="run the live worker: Kafka events in, predictions, alerts, snapshots out",
        description="Run a live worker in the foreground: consume the events and labels "
        "topics, predict and learn with the engine, publish predictions, drift alerts, dead "
        "letters and signed snapshots. Workers with the same service.app_id share the "
        "partitions. Ctrl-C stops after a final snapshot.",
        epilog="examples:\n  DRIFTLINE_SNAPSHOT_KEY=... driftline serve --config driftline.toml\n"
        "  DRIFTLINE_SERVICE__WEB_PORT=6067 DRIFTLINE_SERVICE__METRICS_PORT=9465 driftline serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--warm-start",
        metavar="FILE",
        help="a signed snapshot (e.g. a backtest's model.snapshot) that partitions with no "
        "snapshot of their own start from (service.warm_start)",
    )
    p.add_argument(
        "--loglevel",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (info)",
    )
    commands["serve"] = cmd_serve
