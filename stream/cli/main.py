"""The ``driftline`` command line. ``driftline --help`` lists the commands, each has ``--help``.

One module per command in this folder, each with ``register(sub, commands)``; nothing outside
``driftline.cli`` imports it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from driftline.cli.failures import broken_pipe, fail, flush_stdout
from driftline.errors import UsageError
from driftline.learners.config import ConfigError

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
  driftline dashboard                                  the live service in a browser (:8050)

configuration: --config FILE (TOML) or $DRIFTLINE_CONFIG, then DRIFTLINE_<SECTION>__<KEY>=value
overrides, e.g. DRIFTLINE_MODEL__NAME=hoeffding_tree DRIFTLINE_POLICY__ACTION=reset.
Snapshots are signed with $DRIFTLINE_SNAPSHOT_KEY (or the file in $DRIFTLINE_SNAPSHOT_KEY_FILE).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline",
        description="Streaming online learning and drift detection: River models on Kafka "
        "streams, and offline backtests through the very same engine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: defaults); also after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    from driftline.cli import (
        alerts,
        backtest,
        config,
        dashboard,
        datasets,
        predict,
        produce,
        replay,
        serve,
        snapshots,
        topics,
    )

    datasets.register(sub, commands)
    backtest.register(sub, commands)
    config.register(sub, commands)
    topics.register(sub, commands)
    produce.register(sub, commands)
    replay.register(sub, commands)
    alerts.register(sub, commands)
    snapshots.register(sub, commands)
    serve.register(sub, commands)
    predict.register(sub, commands)
    dashboard.register(sub, commands)
    # `--config FILE` also after the command (`driftline backtest --config f.toml ...`), for
    # every command that reads the settings; SUPPRESS keeps the one given before the command.
    for name, command_parser in sub.choices.items():
        if name != "datasets":
            command_parser.add_argument(
                "--config",
                metavar="FILE",
                default=argparse.SUPPRESS,
                help="TOML settings file (default: $DRIFTLINE_CONFIG, else the defaults)",
            )
    parser.set_defaults(_commands=commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status: 0 done; 1 failed (nothing scored, a file that cannot be
    written, stdout closed early); 2 a usage or configuration error; 130 interrupted. A failure
    is one line on stderr, never a traceback; settings in messages are redacted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        flush_stdout()  # `driftline --help | head -1`: no second error at exit
        raise
    if args.command is None:
        parser.print_help()
        flush_stdout()
        return 2
    try:
        status = args._commands[args.command](args)
        # A reader that went away (`| head`) shows here, inside the try: Python's note on SIGPIPE.
        sys.stdout.flush()
        return status
    except ConfigError as exc:
        return fail("", f"configuration error: {exc}", status=2)
    except UsageError as exc:
        return fail(args.command, str(exc), status=2)
    except KeyboardInterrupt:
        return fail("", "interrupted", status=130)
    except BrokenPipeError as exc:
        return broken_pipe(args.command, exc)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(args.command, f"{where}{exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
