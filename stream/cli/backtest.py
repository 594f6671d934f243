"""``driftline backtest``: replay a stream through the engine and score it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import orjson

from driftline.cli.args import (
    add_source_arguments,
    int_list,
    non_negative_int,
    positive_int,
    settings_from_args,
    snapshot_key,
    source_from_args,
    wrap,
)
from driftline.cli.failures import fail
from driftline.errors import UsageError


def _print_summary(summary: dict[str, Any], out: str | None) -> None:
    from driftline.offline.summary_text import summary_lines

    print("\n".join(summary_lines(summary, out)))


def cmd_backtest(args: argparse.Namespace) -> int:
    from driftline.offline.backtest import run_backtest
    from driftline.offline.summary_text import unscored_reason

    settings = settings_from_args(args)
    if args.batch_size:
        import dataclasses

        settings = dataclasses.replace(
            settings, engine=dataclasses.replace(settings.engine, batch_size=args.batch_size)
        )
    source = source_from_args(args)
    if args.true_drifts is not None:
        source.true_drifts = args.true_drifts
    if getattr(source, "total", None) == 0:
        return fail("backtest", f"{source.name} has no events (empty, or only a CSV header)")
    if args.out is not None:
        _prepare_out_dir(args.out)  # before the run: a bad --out fails at once, not at the end
    summary = run_backtest(
        settings,
        source,
        out_dir=args.out,
        label_delay=args.label_delay,
        max_delay=args.max_delay,
        snapshot_key=snapshot_key(settings),
        show_progress=not args.json,
    )
    if not summary["events"]:
        return fail("backtest", f"{source.name} has no events")
    # Nothing scored (every event rejected, every label too late, no labels): the summary says
    # "n/a" and why, and the exit status says the run measured nothing.
    unscored = unscored_reason(summary)
    if args.json:
        summary.pop("config", None)
        print(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        _print_summary(summary, args.out)
    if unscored is not None:
        sys.stdout.flush()  # the summary first, then the one line on stderr
        unlabelled = not summary.get("labelled") and not summary.get("labels_too_late")
        if summary.get("valid") and unlabelled:
            # A stream without labels is still a data-drift backtest: it measured what it could.
            print(
                f"driftline backtest: note: {unscored}; only data drift was watched",
                file=sys.stderr,
            )
            return 0
        return fail("backtest", f"nothing scored: {unscored}")
    return 0


def _prepare_out_dir(out: str) -> None:
    """Create the ``--out`` folder now (or use it as it is): a regular file there is a usage
    error, a folder that cannot be made or written an :class:`OSError` with one plain line."""
    import os
    from pathlib import Path

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(
            f"--out {out}: exists and is not a folder (--out names the folder that gets "
            "summary.json, the .jsonl outputs and report.png)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(
            exc.errno, f"--out {out}: cannot create the folder ({exc.strerror})"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OSError(13, f"--out {out}: the folder is not writable")


def _backtest_epilog() -> str:
    """Examples, and how to choose the model and add a challenger (names from the registry,
    which does not import River)."""
    import textwrap

    from driftline.learners.models import model_names

    names = ", ".join(n for n in model_names() if ":" not in n)
    names_line = textwrap.fill(
        f'names: {names}, or your own "package.module:factory"',
        width=88,
        initial_indent="  ",
        subsequent_indent="    ",
    )
    return (
        "examples:\n"
        "  driftline backtest --dataset sea-abrupt --out out\n"
        "  driftline backtest --file events.jsonl --true-drifts 5000 --label-delay 100\n"
        "  driftline backtest --file data.csv --target y --id-column id --time-column ts\n"
        "  driftline backtest --config driftline.toml --dataset agrawal-abrupt --json\n"
        "\n"
        "the model (default auto: linear, logistic or linear regression by the task):\n"
        "  DRIFTLINE_MODEL__NAME=hoeffding_tree driftline backtest --dataset friedman-drift\n"
        "  or in the --config file:\n"
        '    [model]\n    name = "hoeffding_tree"\n    params = {grace_period = 50}\n'
        f"{names_line}\n"
        "\n"
        "a challenger (learns in shadow from the start; replaces the champion when a paired test\n"
        "on the same labels says it is better):\n"
        "  DRIFTLINE_POLICY__CHALLENGERS='[\"adaptive_random_forest\"]' driftline backtest ...\n"
        "  or in the --config file:\n"
        '    [policy]\n    challengers = ["hoeffding_tree"]\n'
        "\n"
        "`driftline config` prints every setting; README.md has the whole settings file."
    )


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline backtest`` to the command line."""
    p = sub.add_parser(
        "backtest",
        help="replay a stream through the engine and score it",
        description=wrap(
            "Replay a historical or built-in stream through the same engine the live service "
            "runs (predict, then learn), and report the prequential metric, the drift alerts "
            "and how they match the true drift points."
        ),
        epilog=_backtest_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(p)
    p.add_argument(
        "--true-drifts",
        type=int_list,
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
