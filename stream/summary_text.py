"""The one-screen text of a backtest summary: what a person reads first, so it never overclaims.

A metric is printed only when something was scored ("n/a" and why otherwise); "adaptation paid"
only when the gain's 95% interval is above zero; the no-change baseline is always beside the
metric, and a model worse than it is said to be in plain words. Alerts are shown one line per
incident, with the signals that moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


def _metric_lines(summary: Mapping[str, Any]) -> list[str]:
    name = summary["metric_name"] or "metric"
    metric, base, no_change = (
        summary["metric"],
        summary["baseline_metric"],
        summary.get("no_change_metric"),
    )
    if metric is None:
        why = "no event was usable" if not summary.get("scored") else "nothing scored"
        if summary.get("labels_too_late"):
            why = f"{summary['labels_too_late']:,} labels came too late (see labels.ttl_seconds)"
        return [f"  {name} n/a ({why})"]
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
    lines = [
        f"driftline backtest: {summary['source']}  ({summary['events']:,} events, "
        f"{summary['task']}: {summary['task_reason']})",
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
