"""``driftline alerts``: follow the drift-alerts topic, one readable line per alert.

>>> alert = {"kind": "drift", "detector": "adwin", "signal": "error", "action": "reset",
...          "model_version": 1, "new_model_version": 2, "partition": 0, "ts": 1704072200000}
>>> format_alert(alert)
'2024-01-01T01:23:20Z  partition 0  adwin         error              drift      reset  model v1 -> v2'

A record that is not an alert object is shown as it is, never a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from driftline.cli.args import (
    add_bootstrap_argument,
    reports_kafka_errors,
    settings_from_args,
    wrap,
)
from driftline.live.kafka_clients import make_consumer
from driftline.offline.summary_text import signal_text

#: How often a missing topic is looked for again.
TOPIC_RETRY_S = 1.0
#: The kinds of alert record (driftline.learners.alerting): ``drift`` opens an incident, ``update`` adds a
#: signal to it, ``recovered`` closes it.
KINDS = ("drift", "update", "recovered", "warning", "promoted")


def alert_kinds(text: str) -> frozenset[str]:
    """argparse type of ``--kind``: a comma-separated subset of :data:`KINDS`."""
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(chosen - set(KINDS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown kind {', '.join(unknown) or repr(text)}; valid: {', '.join(KINDS)}"
        )
    return chosen


def _iso(ms: Any) -> str:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return "-"
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_alert(alert: Any, record_ts_ms: int | None = None) -> str:
    """One line: time, partition, detector, signal, kind, action, model version (-> new).

    A record of an incident (``drift`` opens it, ``update`` adds a signal, ``recovered`` closes
    it) reads as the incident: its id and every signal that moved so far, with effect sizes."""
    if not isinstance(alert, dict):
        return f"{_iso(record_ts_ms)}  (not an alert object) {orjson.dumps(alert).decode()}"
    when = _iso(alert.get("ts") if alert.get("ts") is not None else record_ts_ms)
    before, after = alert.get("model_version"), alert.get("new_model_version")
    version = f"model v{before}"
    if after is not None and after != before:
        version += f" -> v{after}"
    signals = alert.get("signals")
    if alert.get("incident") and isinstance(signals, list) and signals:
        moved = ", ".join(signal_text(s) for s in signals if isinstance(s, dict))
        return (
            f"{when}  partition {alert.get('partition', '-')}  incident {alert['incident']}  "
            f"{alert.get('kind', '-')!s:<10} {moved}  action: {alert.get('action', '-')}  "
            f"{version}"
        )
    line = (
        f"{when}  partition {alert.get('partition', '-')}  "
        f"{alert.get('detector', '-')!s:<13} {alert.get('signal', '-')!s:<18} "
        f"{alert.get('kind', '-')!s:<10} {alert.get('action', '-')}  {version}"
    )
    if alert.get("key") is not None:
        line += f"  key {alert['key']}"
    return line


def _kind(value: bytes | None) -> str | None:
    """The ``kind`` of an alert record (None: not an alert object)."""
    try:
        alert = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return alert.get("kind") if isinstance(alert, dict) else None


def _render(value: bytes | None, record_ts_ms: int | None, as_json: bool) -> str:
    if value is None:
        return f"{_iso(record_ts_ms)}  (empty record)"
    if as_json:
        return value.decode("utf-8", errors="replace")
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        return f"{_iso(record_ts_ms)}  (not JSON) {value[:200]!r}"
    return format_alert(alert, record_ts_ms)


def follow_alerts(
    settings: Any,
    *,
    from_beginning: bool,
    as_json: bool,
    max_alerts: int | None,
    timeout_s: float | None,
    out: Any = None,
    kinds: frozenset[str] | None = None,
) -> int:
    """Print alerts as they arrive; returns how many were printed. Stops after ``max_alerts``
    or ``timeout_s`` seconds without a new alert (``None``: follow until Ctrl-C). ``kinds``:
    only records of these kinds (``drift``, ``update``, ``recovered``, ``warning``, ``promoted``)."""
    from kafka import TopicPartition

    out = out or sys.stdout
    topic = settings.kafka.topics.alerts
    consumer = make_consumer(settings, client_id="driftline-alerts")
    printed = 0
    last_seen = time.monotonic()

    def silent_too_long() -> bool:
        return timeout_s is not None and time.monotonic() - last_seen >= timeout_s

    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            print(
                f"driftline alerts: waiting for topic {topic} to exist "
                "(`driftline topics create` or a running worker makes it)",
                file=sys.stderr,
            )
        while not partitions:
            if silent_too_long():
                return printed
            time.sleep(TOPIC_RETRY_S)
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
            for tp in assigned:  # resolve "the end" now, not at the first poll
                consumer.position(tp)
        while max_alerts is None or printed < max_alerts:
            wait_ms = 500
            if timeout_s is not None:
                left = timeout_s - (time.monotonic() - last_seen)
                if left <= 0:
                    break
                wait_ms = max(1, min(wait_ms, int(left * 1000)))
            batch = consumer.poll(timeout_ms=wait_ms)
            records = sorted(
                (r for rs in batch.values() for r in rs), key=lambda r: (r.timestamp, r.partition)
            )
            for record in records:
                if kinds is not None and _kind(record.value) not in kinds:
                    continue
                print(_render(record.value, record.timestamp, as_json), file=out, flush=True)
                printed += 1
                last_seen = time.monotonic()
                if max_alerts is not None and printed >= max_alerts:
                    break
    finally:
        consumer.close()
    return printed


@reports_kafka_errors
def cmd_alerts(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    # Ctrl-C is how one stops following: not an error.
    with contextlib.suppress(KeyboardInterrupt):
        follow_alerts(
            settings,
            from_beginning=args.from_beginning,
            as_json=args.json,
            max_alerts=args.max,
            timeout_s=args.timeout,
            kinds=args.kind,
        )
    return 0


def register(
    sub: argparse._SubParsersAction, commands: dict[str, Callable[[argparse.Namespace], int]]
) -> None:
    from driftline.cli.args import positive_float, positive_int

    p = sub.add_parser(
        "alerts",
        help="follow the drift alerts of the live service",
        description=wrap(
            "Print one line per drift alert as it arrives (time, partition, detector, "
            "signal, kind, action, model version -> new version), or the raw JSON. Follows until "
            "Ctrl-C, --max alerts or --timeout seconds without one."
        ),
        epilog="examples:\n  driftline alerts\n  driftline alerts --from-beginning --json --timeout 5\n"
        "  driftline alerts --kind drift,recovered,promoted      incidents and promotions only",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start with the oldest alert still on the topic (default: new ones only)",
    )
    p.add_argument("--json", action="store_true", help="print each alert as its raw JSON")
    p.add_argument(
        "--kind",
        type=alert_kinds,
        metavar="K1,K2",
        help="only these kinds: drift (opens an incident), update, recovered, warning, promoted; "
        "e.g. --kind drift,recovered,promoted for the incidents without warnings",
    )
    p.add_argument("--max", type=positive_int, metavar="N", help="stop after N alerts")
    p.add_argument(
        "--timeout",
        type=positive_float,
        metavar="S",
        help="stop after S seconds without a new alert",
    )
    add_bootstrap_argument(p)
    commands["alerts"] = cmd_alerts
