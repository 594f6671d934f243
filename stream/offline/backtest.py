"""The offline driver: replay a stream through the same engine the live service runs.

``run_backtest`` feeds every event, in order, to the main engine and to a baseline engine (same
model and guard, no drift detection or action), writes the outputs, and returns the summary.
Labels are learned inline, or ``label_delay`` events later to mimic late labels.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from driftline.label_order import record_time
from driftline.learners.alerting import signal_family
from driftline.learners.config import LearningConfig, to_mapping
from driftline.learners.engine import Engine, Outputs
from driftline.learners.events import InvalidRecord, decode_event, validate_event
from driftline.learners.prototypes import display_name
from driftline.offline.scoring import (
    Scorecard,
    adaptation_interval,
    periodic_alarms,
    score_detections,
)
from driftline.offline.sources import Source
from driftline.offline.summary_text import unscored_reason
from driftline.progress import Progress
from driftline.settings import redact

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
SERIES_POINTS = 500


def baseline_config(config: LearningConfig) -> LearningConfig:
    """The same model with no drift action: what the user would have had without driftline."""
    detectors = config.detectors
    off: dict[str, Any] = {"kind": "none"}
    return dataclasses.replace(
        config,
        policy=dataclasses.replace(config.policy, action="none", challengers=()),
        detectors=dataclasses.replace(
            detectors,
            error=dataclasses.replace(detectors.error, **off),
            prediction=dataclasses.replace(detectors.prediction, **off),
            features=dataclasses.replace(detectors.features, **off),
        ),
        snapshot=dataclasses.replace(config.snapshot, every_events=0, every_seconds=0),
    )


class OutputFiles:
    """``predictions.jsonl``, ``alerts.jsonl`` and ``dead_letter.jsonl`` in ``out_dir``."""

    def __init__(self, out_dir: Path | None) -> None:
        self.files: dict[str, BinaryIO] = {}
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name in ("predictions", "alerts", "dead_letter"):
                self.files[name] = open(out_dir / f"{name}.jsonl", "wb")  # noqa: SIM115

    def write(self, outputs: Outputs) -> None:
        for name, records in (
            ("predictions", outputs.predictions),
            ("alerts", outputs.alerts),
            ("dead_letter", outputs.dead_letters),
        ):
            handle = self.files.get(name)
            if handle is not None and records:
                handle.write(
                    b"".join(orjson.dumps(r, option=JSON_OPTIONS) + b"\n" for r in records)
                )

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def _split_label(item: Any, config: LearningConfig) -> tuple[Any, dict[str, Any] | None]:
    """Take the label off a valid event so it can arrive later. Anything invalid passes through
    unchanged, so its dead letter keeps the original line."""
    limits = config.engine
    try:
        if isinstance(item, dict):
            event = validate_event(item, limits.max_abs_value)
        elif isinstance(item, bytes | str):
            event = decode_event(item, limits.max_event_bytes, limits.max_abs_value)
        else:
            return item, None
    except InvalidRecord:
        return item, None
    if event["y"] is None:
        return item, None
    label = {"id": event["id"], "y": event.pop("y")}
    return event, label


class EventClock:
    """Event time in a backtest: an event's ``ts``, else the time of the one before it (a file
    with no time at all: its position). Never goes back, as in :mod:`driftline.label_order`."""

    def __init__(self) -> None:
        self.now = -math.inf
        self.timed = False

    def time_of(self, item: Any, index: int) -> float:
        if isinstance(item, dict):
            own = item.get("ts")
            own = own if isinstance(own, int | float) and not isinstance(own, bool) else None
        elif isinstance(item, bytes):
            own = record_time(item, None)
        else:
            own = None
        if own is not None:
            self.timed = True
        elif not self.timed:
            own = index
        if own is not None and own > self.now:
            self.now = own
        return self.now


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def run_backtest(
    config: LearningConfig,
    source: Source,
    *,
    out_dir: str | Path | None = None,
    label_delay: int = 0,
    max_delay: int = 2500,
    snapshot_key: bytes | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    out_path = Path(out_dir) if out_dir is not None else None
    engine = Engine(config, partition=0, snapshot_key=snapshot_key)
    baseline = Engine(baseline_config(config), partition=0)
    baseline.encoder.log_caps = False  # the engine says it once for this stream
    engine.scorecard, baseline.scorecard = Scorecard(), Scorecard()
    files = OutputFiles(out_path)
    progress = Progress(source.total, source.name) if show_progress else None
    batch_size = config.engine.batch_size
    step = max(1, (source.total or 10_000) // SERIES_POINTS)
    series: list[tuple[int, float]] = []
    baseline_series: list[tuple[int, float]] = []
    fallback_counts: list[tuple[int, int]] = []
    alerts: list[dict[str, Any]] = []
    dead_letters = 0
    # Late labels wait for the event N later (whose time they take), then for an event later
    # than that time: the rule of the live service (driftline.label_order), on the same clock.
    held: deque[tuple[int, dict[str, Any]]] = deque()
    late: deque[tuple[float, dict[str, Any]]] = deque()
    clock = EventClock()
    batch: list[Any] = []
    engine_seconds = 0.0
    last_snapshot: dict[str, Any] | None = None

    def run(engines_call: Any) -> None:
        nonlocal engine_seconds
        started = time.perf_counter()
        engines_call(engine)
        engine_seconds += time.perf_counter() - started
        engines_call(baseline)
        baseline.outputs.drain()

    def flush_outputs() -> None:
        nonlocal dead_letters, last_snapshot
        out = engine.outputs.drain()
        files.write(out)
        alerts.extend(out.alerts)
        dead_letters += len(out.dead_letters)
        if out.snapshots:
            last_snapshot = out.snapshots[-1]

    def sample(index: int) -> None:
        for eng, points in ((engine, series), (baseline, baseline_series)):
            if eng.rolling is not None and eng.counters["labelled"]:
                points.append((index, eng.rolling.get()))
        fallback_counts.append((index, engine.counters["predicted_by_fallback"]))

    def deliver_labels(before: float) -> None:
        if late and late[0][0] < before:
            flush_batch()  # a due label's event may still wait in the batch
        while late and late[0][0] < before:
            label = late.popleft()[1]
            run(lambda e, label=label: e.process_label(label))

    def flush_batch() -> None:
        if batch:
            offsets = list(range(engine.watermark + 1, engine.watermark + 1 + len(batch)))
            run(lambda e: e.process_batch(batch, offsets))
            batch.clear()

    index, now = -1, 0.0
    for index, item in enumerate(source.items):
        if label_delay:
            item, label = _split_label(item, config)
            now = clock.time_of(item, index)
            deliver_labels(before=now)
            if label is not None:
                held.append((index + label_delay, label))
        if batch_size > 1:
            batch.append(item)
            if len(batch) >= batch_size:
                flush_batch()
        else:
            run(lambda e, item=item, index=index: e.process(item, index))
        while held and held[0][0] <= index:
            late.append((now, held.popleft()[1]))  # known from this event's time on
        if index % step == 0:
            flush_outputs()
            sample(index)
            if progress is not None:
                progress.update(index + 1, f"alerts {len(alerts)}")
    flush_batch()
    late.extend((now, label) for _, label in held)  # the stream ended before their time
    deliver_labels(math.inf)
    if snapshot_key is not None:
        engine.checkpoint()  # the final state, without changing what a rollback would use
    flush_outputs()
    if index >= 0:
        sample(index)
    files.close()
    if progress is not None:
        progress.close()

    summary = _summary(config, source, engine, baseline, alerts, max_delay, engine_seconds)
    summary["label_delay"] = label_delay
    # Why the metric is null (None when it was measured): the same words the text summary prints.
    summary["unscored_reason"] = unscored_reason(summary)
    if out_path is not None:
        if last_snapshot is not None:
            (out_path / "model.snapshot").write_bytes(last_snapshot["blob"])
            summary["snapshot"] = str(out_path / "model.snapshot")
        else:
            # No key, no snapshot: one left by an earlier run into this folder would pass for
            # this run's model.
            (out_path / "model.snapshot").unlink(missing_ok=True)
        (out_path / "summary.json").write_bytes(
            orjson.dumps(summary, option=JSON_OPTIONS | orjson.OPT_INDENT_2)
        )
        from driftline.offline.report import resolved_model_name, write_report

        slot = next(iter(engine.slots.values()), None)
        model = resolved_model_name(config.model.name, slot.model if slot else None)

        write_report(
            out_path / "report.png",
            metric_name=f"rolling {summary['metric_name'] or 'metric'} "
            f"({config.engine.rolling_window} events)",
            series=series,
            baseline_series=baseline_series,
            true_drifts=source.true_drifts,
            alerts=alerts,
            title=f"{source.name}: {model} model, policy {config.policy.action}",
            fallback_counts=fallback_counts,
            summary=summary,
        )
        summary["report"] = str(out_path / "report.png")
    return summary


def _detection_scores(
    config: LearningConfig,
    source: Source,
    alerts: list[dict[str, Any]],
    max_delay: int,
    events: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores on the signals the policy acts on (the headline), and per signal, per incident and
    for a periodic dummy with as many alarms as there were incidents."""
    options: dict[str, Any] = {"events": events, "width": source.drift_width}
    detections = ("drift", "update")  # an update is a signal's own detection inside an incident

    def on(family: str) -> list[dict[str, Any]]:
        return [a for a in alerts if signal_family(a["signal"]) == family]

    acted_on = [a for a in alerts if signal_family(a["signal"]) in set(config.policy.act_on)]
    headline = score_detections(
        acted_on, source.true_drifts, max_delay, kinds=detections, **options
    )
    incidents = score_detections(alerts, source.true_drifts, max_delay, **options)
    dummy = [{"kind": "drift", "index": i} for i in periodic_alarms(incidents["alarms"], events)]
    scores = {
        "incidents": incidents,
        "periodic_dummy": score_detections(dummy, source.true_drifts, max_delay, **options),
        **{
            family: score_detections(
                on(family), source.true_drifts, max_delay, kinds=detections, **options
            )
            for family in ("error", "prediction", "features", "guard")
            + (("slices",) if config.slices.by else ())
        },
    }
    return headline, scores


def _summary(
    config: LearningConfig,
    source: Source,
    engine: Engine,
    baseline: Engine,
    alerts: list[dict[str, Any]],
    max_delay: int,
    engine_seconds: float,
) -> dict[str, Any]:
    events = engine.counters["events"]
    headline, detection_scores = _detection_scores(config, source, alerts, max_delay, events)
    by_signal = Counter(f"{a['signal']}:{a['kind']}" for a in alerts)
    card, base_card = engine.scorecard, baseline.scorecard
    slot = next(iter(engine.slots.values()), None)
    models = slot.describe_models() if slot else []
    for model in models:
        if not model.get("labels"):
            model["metric"] = None  # River's metrics read 0.0 before any update: not measured
    return {
        "source": source.name,
        "task": engine.task,
        "task_reason": engine.task_reason,
        "model": display_name(config.model.name, config.model.params),
        "policy": config.policy.action,
        "events": events,
        "invalid": engine.counters["invalid"],
        "valid": engine.counters["valid"],
        "labelled": engine.counters["labelled"],
        "learned": engine.counters["learned"],
        "scored": len(card.losses),
        "guarded": engine.counters["guarded"],
        "labels_too_late": engine.counters["labels_too_late"],
        "metric_name": getattr(engine, "metric_name", None),
        # None, never 0.0, when nothing was scored.
        "metric": _finite(card.metric()),
        "baseline_metric": _finite(base_card.metric()),
        "no_change_metric": _finite(card.no_change_metric()),
        "kappa_temporal": card.kappa_temporal(),
        "adaptation": adaptation_interval(card.losses, base_card.losses),
        "predicted_by": {
            "model": engine.counters["predicted_by_model"],
            "fallback": engine.counters["predicted_by_fallback"],
        },
        "model_version": slot.version if slot else 0,
        "models": models,
        "incidents": engine.counters["incidents"],
        "promotions": engine.counters["promotions"],
        "alerts": [
            {
                k: a.get(k)
                for k in ("index", "kind", "detector", "signal", "action", "incident", "signals")
            }
            for a in alerts
        ],
        "alerts_by_signal": dict(sorted(by_signal.items())),
        "alerts_by_kind": dict(sorted(Counter(a["kind"] for a in alerts).items())),
        "scored_signals": sorted(set(config.policy.act_on)),
        "true_drifts": list(source.true_drifts),
        **headline,
        "detection_scores": detection_scores,
        "not_significant": _not_significant(engine),
        "dead_letter_reasons": dict(engine.dead_letter_reasons),
        # {feature: {value: {events, labelled, metric, alerts}}}, and events in no slice of it.
        "slices": engine.slices.describe() if engine.slices else {},
        "slices_skipped": dict(engine.slices.skipped) if engine.slices else {},
        "labels_expired": engine.pending.expired,
        "labels_evicted": engine.pending.evicted,
        "keys_evicted": engine.counters["keys_evicted"],
        "model_errors": {
            "predict": sum(s.predict_errors for s in engine.slots.values()),
            "learn": sum(s.learn_errors for s in engine.slots.values()),
        },
        "events_per_second": events / engine_seconds if engine_seconds else None,
        # Redacted: passwords, tokens and keys in the settings never reach summary.json.
        "config": redact(to_mapping(config)),
    }


def _not_significant(engine: Engine) -> dict[str, int]:
    """Detector alarms dropped as too small or too likely under no change, per signal family."""
    counts = {
        "error": sum(s.monitor.not_significant for s in engine.slots.values() if s.monitor),
        "prediction": engine.prediction_monitor.not_significant if engine.prediction_monitor else 0,
        "features": engine.features.not_significant if engine.features else 0,
        "guard": engine.guard_monitor.not_significant,
    }
    if engine.slices is not None:
        counts["slices"] = engine.slices.not_significant
    return counts
