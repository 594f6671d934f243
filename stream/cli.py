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

    # engine.task = "regression" keeps labels written 0.0 / 1.0 numbers (else they are classes).
    task = _settings(args).engine.task if args.file is not None else None
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


def _settings(args: argparse.Namespace) -> Any:
    from stream.settings import load_settings

    return load_settings(getattr(args, "config", None))


def _snapshot_key(config: Any) -> bytes | None:
    from learners.snapshot import SnapshotError
    from stream.keys import load_key

    try:
        return load_key(config.snapshot.key_file if config else "")
    except SnapshotError as exc:
        raise UsageError(str(exc)) from None


# --------------------------------------------------------------------------- datasets


def cmd_datasets(args: argparse.Namespace) -> int:
    from stream.datasets import DATASETS

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

    from stream.datasets import get_dataset

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


# --------------------------------------------------------------------------- backtest


def _print_summary(summary: dict[str, Any], out: str | None) -> None:
    from stream.summary_text import summary_lines

    print("\n".join(summary_lines(summary, out)))


def cmd_backtest(args: argparse.Namespace) -> int:
    from stream.backtest import run_backtest
    from stream.summary_text import unscored_reason

    settings = _settings(args)
    if args.batch_size:
        import dataclasses

        settings = dataclasses.replace(
            settings, engine=dataclasses.replace(settings.engine, batch_size=args.batch_size)
        )
    source = source_from_args(args)
    if args.true_drifts is not None:
        source.true_drifts = args.true_drifts
    if getattr(source, "total", None) == 0:
        return _fail("backtest", f"{source.name} has no events (empty, or only a CSV header)")
    if args.out is not None:
        _prepare_out_dir(args.out)  # before the run: a bad --out fails at once, not at the end
    summary = run_backtest(
        settings,
        source,
        out_dir=args.out,
        label_delay=args.label_delay,
        max_delay=args.max_delay,
        snapshot_key=_snapshot_key(settings),
        show_progress=not args.json,
    )
    if not summary["events"]:
        return _fail("backtest", f"{source.name} has no events")
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
        return _fail("backtest", f"nothing scored: {unscored}")
    return 0


# --------------------------------------------------------------------------- config


def cmd_config(args: argparse.Namespace) -> int:
    from learners.config import to_mapping
    from stream.settings import redact

    settings = _settings(args)
    # Passwords, tokens and keys show as "***" (stream.settings.redact).
    print(orjson.dumps(redact(to_mapping(settings)), option=orjson.OPT_INDENT_2).decode())
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
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: defaults); also after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}

    p = sub.add_parser(
        "datasets",
        help="list the built-in streams (with their true drift points), or export one as JSONL",
        description=_wrap(
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

    p = sub.add_parser(
        "backtest",
        help="replay a stream through the engine and score it",
        description=_wrap(
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

    p = sub.add_parser(
        "config",
        help="print the effective settings (defaults + file + env)",
        description=_wrap(
            "Print the settings every command would run with, as JSON: the defaults, then the "
            "TOML file of --config (or $DRIFTLINE_CONFIG), then DRIFTLINE_<SECTION>__<KEY>=value "
            "overrides. Secrets (passwords, tokens, keys) show as ***. A wrong key, type or "
            "name is one line and exit status 2: a way to check a settings file before a run."
        ),
        epilog="examples:\n"
        "  driftline config\n"
        "  driftline config --config driftline.toml          check a settings file\n"
        "  DRIFTLINE_MODEL__NAME=hoeffding_tree driftline config   see an override land",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands["config"] = cmd_config

    from stream import alerts_cli, app, predict_cli, produce, replay, snapshots_cli, topics_cli

    topics_cli.register(sub, commands)
    produce.register(sub, commands)
    replay.register(sub, commands)
    alerts_cli.register(sub, commands)
    snapshots_cli.register(sub, commands)
    app.register(sub, commands)  # driftline serve
    predict_cli.register(sub, commands)
    from stream.dashboard import command as dashboard_command

    dashboard_command.add_parser(sub)
    commands["dashboard"] = dashboard_command.run
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


def _wrap(text: str) -> str:
    """A command description, wrapped for a help page whose epilog keeps its own layout."""
    import textwrap

    return textwrap.fill(text, width=88, break_on_hyphens=False)


def _backtest_epilog() -> str:
    """Examples, and how to choose the model and add a challenger (names from the registry,
    which does not import River)."""
    import textwrap

    from learners.models import model_names

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status: 0 done; 1 failed (nothing scored, a file that cannot be
    written, stdout closed early); 2 a usage or configuration error; 130 interrupted. A failure
    is one line on stderr, never a traceback; settings in messages are redacted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        _flush_stdout()  # `driftline --help | head -1`: no second error at exit
        raise
    if args.command is None:
        parser.print_help()
        _flush_stdout()
        return 2
    try:
        status = args._commands[args.command](args)
        # A reader that went away (`| head`) shows here, inside the try: Python's note on SIGPIPE.
        sys.stdout.flush()
        return status
    except ConfigError as exc:
        return _fail("", f"configuration error: {exc}", status=2)
    except UsageError as exc:
        return _fail(args.command, str(exc), status=2)
    except KeyboardInterrupt:
        return _fail("", "interrupted", status=130)
    except BrokenPipeError as exc:
        return _broken_pipe(args.command, exc)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(args.command, f"{where}{exc.strerror or exc}")


# --------------------------------------------------------------------------- failures, one line


def _fail(command: str, message: str, status: int = 1) -> int:
    """``driftline <command>: <message>`` on stderr (settings redacted); returns ``status``."""
    import contextlib

    from stream.settings import redact_text

    prefix = f"driftline {command}: " if command else "driftline: "
    with contextlib.suppress(OSError):  # stderr is gone too: the exit status still tells
        print(prefix + redact_text(message), file=sys.stderr)
    return status


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


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False  # not a file descriptor (tests) or no poll(): cannot tell


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail a second time."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _flush_stdout() -> bool:
    """Flush stdout; ``False`` (and stdout silenced) when its reader has gone."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        _silence_stdout()
        return False


def _broken_pipe(command: str, exc: BrokenPipeError) -> int:
    """``driftline ... | head``: the reader closed stdout early. Silent, like other Unix tools,
    with exit status 1 (https://docs.python.org/3/library/signal.html#note-on-sigpipe). A broken
    pipe elsewhere (a socket) is one line on stderr."""
    if not _flush_stdout() or _stdout_closed():
        _silence_stdout()
        return 1
    return _fail(command, f"broken pipe: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
