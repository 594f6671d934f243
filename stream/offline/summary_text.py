"""The one-screen text of a backtest summary: what a person reads first, so it never overclaims.

A metric is printed only when something was scored ("n/a" and why otherwise); "adaptation paid"
only when the gain's 95% interval is above zero; the no-change baseline is always beside the
metric, and a model worse than it is said to be in plain words. Alerts are shown one line per
incident, with the signals that moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from driftline.offline.slice_report import slice_lines

HIGHER_IS_BETTER = ("accuracy", "f1", "macro_f1", "r2")
MAX_INCIDENT_LINES = 12


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def signal_text(signal: Mapping[str, Any]) -> str:
    """``feature:temp (d +1.52: 20.1 -> 23.0)``: the signal, its effect size, before and after."""
    effect = signal.get("effect")
    if effect is None:
        return str(signal["signal"])
    before, after = signal.get("before"), signal.get("after")
    moved = f": {before:.3g} -> {after:.3g}" if before is not None and after is not None else ""
    return f"{signal['signal']} (d {effect:+.2f}{moved})"


def incident_lines(alerts: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per incident (its opening index, id, state, promotions, the signals that moved),
    then any warning that belongs to no incident is left out: warnings are not drift."""
    incidents: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        incident = alert.get("incident")
        if incident is None:
            continue
        entry = incidents.setdefault(
            incident, {"index": alert["index"], "signals": [], "state": "open", "promoted": []}
        )
        if alert.get("signals"):
            entry["signals"] = alert["signals"]
        if alert["kind"] == "recovered":
            entry["state"] = f"recovered at #{alert['index']}"
        elif alert["kind"] == "promoted":
            entry["promoted"].append(str(alert.get("action", "promoted")))
    lines = []
    for incident, entry in incidents.items():
        if not entry["signals"]:
            continue  # only warnings or promotions while it was open: nothing drifted yet
        moved = ", ".join(signal_text(s) for s in entry["signals"])
        promoted = f"; {'; '.join(entry['promoted'])}" if entry["promoted"] else ""
        lines.append(f"#{entry['index']:<8} {incident:<14} {entry['state']:<20} {moved}{promoted}")
    return lines


def _reasons(counts: Mapping[str, int] | None) -> str:
    """``bad_label 1250, not_json 3``: dead-letter reasons, most frequent first."""
    ranked = sorted((counts or {}).items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason} {count}" for reason, count in ranked)


def late_label_cause(summary: Mapping[str, Any]) -> str:
    """Why labels came too late to be scored: the TTL (on event time), the bound on waiting
    predictions, or a label whose id no waiting prediction had.

    >>> late_label_cause({"labels_expired": 60, "label_delay": 7,
    ...                   "config": {"labels": {"ttl_seconds": 3600.0, "max_pending": 100000}}})
    'labels.ttl_seconds is 3600 s of event time, less than the time from an event to its label
    (--label-delay 7 events); raise it (DRIFTLINE_LABELS__TTL_SECONDS), for daily events to at
    least 604,800 s'
    """
    labels = (summary.get("config") or {}).get("labels") or {}
    delay = summary.get("label_delay")
    after = f" (--label-delay {delay:,} events)" if delay else ""
    causes = []
    if summary.get("labels_expired"):
        ttl = labels.get("ttl_seconds")
        ttl_text = f"{ttl:g} s" if isinstance(ttl, int | float) else "its limit"
        example = f", for daily events to at least {delay * 86_400:,} s" if delay else ""
        causes.append(
            f"labels.ttl_seconds is {ttl_text} of event time, less than the time from an event "
            f"to its label{after}; raise it (DRIFTLINE_LABELS__TTL_SECONDS){example}"
        )
    if summary.get("labels_evicted"):
        bound = labels.get("max_pending")
        bound_text = f"{bound:,}" if isinstance(bound, int) else "its limit"
        causes.append(
            f"labels.max_pending is {bound_text}: more predictions waited for their label than "
            f"that{after}; raise it (DRIFTLINE_LABELS__MAX_PENDING)"
        )
    if not causes:
        causes.append(
            "no waiting prediction had the label's id (a label for an unknown, "
            "rejected or already labelled event)"
        )
    return "; ".join(causes)


def unscored_reason(summary: Mapping[str, Any]) -> str | None:
    """Why nothing was scored (the metric is ``n/a`` / null), or ``None`` when it was measured.

    >>> unscored_reason({"metric": None, "events": 1250, "invalid": 1250, "valid": 0,
    ...                  "dead_letter_reasons": {"bad_label": 1250}})
    'every event rejected: bad_label 1250'
    >>> unscored_reason({"metric": 0.91}) is None
    True
    """
    if summary.get("metric") is not None:
        return None
    events = summary.get("events", 0)
    if not events:
        return "no events"
    reasons = _reasons(summary.get("dead_letter_reasons"))
    valid = summary.get("valid", events - summary.get("invalid", 0))
    if not valid:
        return f"every event rejected: {reasons}" if reasons else "every event rejected"
    too_late, labelled = summary.get("labels_too_late", 0), summary.get("labelled", 0)
    if too_late and not labelled:
        return f"every label came too late: {late_label_cause(summary)}"
    if too_late:
        return (
            f"{too_late:,} of {too_late + labelled:,} labels came too late: "
            f"{late_label_cause(summary)}; the other {labelled:,} had no prediction to score"
        )
    if not labelled:
        rejected = f" (rejected: {reasons})" if reasons else ""
        return f"no valid event had a label (y in JSONL, the --target column in CSV){rejected}"
    return f"none of the {labelled:,} labels had a prediction to score"


def _metric_lines(summary: Mapping[str, Any]) -> list[str]:
    name = summary["metric_name"] or "metric"
    metric, base, no_change = (
        summary["metric"],
        summary["baseline_metric"],
        summary.get("no_change_metric"),
    )
    if metric is None:
        return [f"  {name} n/a ({unscored_reason(summary)})"]
    kappa = summary.get("kappa_temporal")
    line = (
        f"  {name} {metric:.4f}   no adaptation {_number(base)}   no-change {_number(no_change)}"
        + (f"   kappa-temporal {kappa:.3f}" if kappa is not None else "")
    )
    lines = [line]
    adaptation = summary.get("adaptation") or {}
    if adaptation.get("interval") == [0.0, 0.0] and not summary.get("promotions"):
        lines.append(
            "  adaptation: none needed (the model was never replaced: same as no adaptation)"
        )
    elif adaptation.get("interval"):
        low, high = adaptation["interval"]
        lines.append(
            f"  {adaptation['verdict']}: gain {adaptation['gain']:+.4f} "
            f"(95% interval {low:+.4f} .. {high:+.4f}, batch means)"
        )
    elif adaptation:
        lines.append(f"  adaptation: {adaptation['verdict']}")
    if no_change is not None:
        worse = metric < no_change if name in HIGHER_IS_BETTER else metric > no_change
        if worse:
            lines.append(
                "  the model is WORSE than the no-change baseline (repeating the previous label)"
            )
    too_late = summary.get("labels_too_late", 0)
    if too_late:
        total = too_late + summary.get("labelled", 0)
        lines.append(
            f"  {too_late:,} of {total:,} labels came too late and were not scored: "
            f"{late_label_cause(summary)}"
        )
    return lines


def _detection_lines(summary: Mapping[str, Any]) -> list[str]:
    scores = summary.get("detection_scores") or {}
    incidents = scores.get("incidents") or {}
    events = summary["events"]
    if not summary["true_drifts"]:
        count = summary.get("incidents", 0)
        rate = f" (one per {events // count:,} events)" if count else ""
        return [f"  no true drifts given: {count} incident{'s' * (count != 1)}{rate}"]
    delay = summary["detection_delay_mean"]
    signals = ", ".join(summary.get("scored_signals", []))
    lines = [
        f"  true drifts {', '.join(map(str, summary['true_drifts']))}: found "
        f"{len(summary['detected'])}/{len(summary['true_drifts'])} on {signals}"
        + (f", mean delay {delay:.0f} events" if delay is not None else "")
        + f"; false alarms {summary['false_alarms']}"
    ]
    dummy = scores.get("periodic_dummy") or {}
    if incidents:
        lines.append(
            f"  incidents: precision {_number(incidents['precision'], 2)} recall "
            f"{_number(incidents['recall'], 2)} F1 {_number(incidents['f1'], 2)}, "
            f"{incidents['false_alarms_per_10k']:.2f} false alarms per 10k events; "
            f"a periodic dummy with as many alarms: F1 {_number(dummy.get('f1'), 2)}"
        )
    return lines


def summary_lines(summary: Mapping[str, Any], out: str | None) -> list[str]:
    task = (
        f"{summary['task']}: {summary['task_reason']}"
        if summary.get("task")
        else "task unknown: no label was read"
    )
    lines = [
        f"driftline backtest: {summary['source']}  ({summary['events']:,} events, {task})",
        f"  model {summary['model']}, drift policy {summary['policy']}",
        *_metric_lines(summary),
    ]
    rate = summary["events_per_second"]
    lines.append(
        f"  events {summary['events']:,}  invalid {summary['invalid']:,}  learned "
        f"{summary['learned']:,}  guarded {summary['guarded']:,}  late labels dropped "
        f"{summary['labels_too_late']:,}  {rate or 0:,.0f} events/s"
    )
    lines.append(
        f"  predictions: {summary['predicted_by']['model']:,} by the model, "
        f"{summary['predicted_by']['fallback']:,} by the fallback; final model version "
        f"{summary['model_version']}"
    )
    for model in summary.get("models", []):
        extra = f", {model['origin']}" if model.get("origin") else ""
        lines.append(
            f"  {model['role']}: {model['name']}{extra}  {summary['metric_name'] or 'metric'} "
            f"{_number(model['metric'])} over {model['labels']:,} labels"
            + (f", {model['promotions']} promotions" if model.get("promotions") else "")
        )
    lines.extend(_detection_lines(summary))
    kinds = summary.get("alerts_by_kind", {})
    lines.append(
        f"  incidents {summary.get('incidents', 0)}, promotions {summary.get('promotions', 0)}"
        f"  (records: {', '.join(f'{k} {n}' for k, n in kinds.items()) or 'none'})"
    )
    shown = incident_lines(summary["alerts"])
    lines.extend(f"    {line}" for line in shown[:MAX_INCIDENT_LINES])
    if len(shown) > MAX_INCIDENT_LINES:
        lines.append(f"    ... {len(shown) - MAX_INCIDENT_LINES} more incidents in alerts.jsonl")
    lines.extend(slice_lines(summary))
    if summary["dead_letter_reasons"]:
        reasons = ", ".join(f"{r} {n}" for r, n in summary["dead_letter_reasons"].items())
        lines.append(f"  dead letters by reason: {reasons}")
    if out:
        lines.append(
            f"  written to {out}/: summary.json predictions.jsonl alerts.jsonl dead_letter.jsonl "
            "report.png" + (" model.snapshot" if summary.get("snapshot") else "")
        )
        if not summary.get("snapshot"):
            lines.append("  (no model.snapshot: set DRIFTLINE_SNAPSHOT_KEY to write a signed one)")
    return lines
