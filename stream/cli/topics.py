"""``driftline topics create|list``: make the missing driftline topics, or say which exist."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from driftline.cli.args import add_bootstrap_argument, reports_kafka_errors, settings_from_args
from driftline.live.kafka_clients import wait_for_broker
from driftline.live.topics import prepare_topics, topic_statuses


@reports_kafka_errors
def cmd_topics(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.partitions is not None:
        kafka = dataclasses.replace(settings.kafka, partitions=args.partitions)
        settings = dataclasses.replace(settings, kafka=kafka)
    created: list[str] = []
    if args.action == "create":
        created = prepare_topics(settings, args.wait)
    else:
        wait_for_broker(settings, args.wait)
    statuses = topic_statuses(settings, created)
    for st in statuses:
        line = f"{st.name:<24} {st.status:<8}"
        if st.status != "missing":
            line += f" {st.partitions} partitions"
            if st.partitions != st.expected_partitions:
                line += f" (the settings say {st.expected_partitions}; existing topics are kept)"
        print(line)
    if any(st.status == "missing" for st in statuses):
        return 1
    return 0


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    p = sub.add_parser(
        "topics",
        help="create or list the driftline topics on the broker",
        description="create: make the missing driftline topics with the configured partitions "
        "and replication (model-snapshots compacted, 10 MiB messages); existing topics are left "
        "alone. list: which exist, with their partition counts (exit 1 if one is missing).",
    )
    p.add_argument("action", choices=["create", "list"])
    p.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="partitions of each new topic (default: kafka.partitions, 1)",
    )
    add_bootstrap_argument(p)
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="retry for up to S seconds until the broker answers (a broker still starting)",
    )
    commands["topics"] = cmd_topics
