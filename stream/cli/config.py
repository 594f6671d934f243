"""``driftline config``: the effective settings, as JSON."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson

from driftline.cli.args import settings_from_args, wrap


def cmd_config(args: argparse.Namespace) -> int:
    from driftline.learners.config import to_mapping
    from driftline.settings import redact

    settings = settings_from_args(args)
    # Passwords, tokens and keys show as "***" (driftline.settings.redact).
    print(orjson.dumps(redact(to_mapping(settings)), option=orjson.OPT_INDENT_2).decode())
    return 0


def register(sub: Any, commands: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """Add ``driftline config`` to the command line."""
    sub.add_parser(
        "config",
        help="print the effective settings (defaults + file + env)",
        description=wrap(
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
