"""A micro-batch's labelled rows scored per column instead of one event at a time.

After River predicted a batch, each row went through the per-event steps: serve, emit the
record (with the running metric), score, the fallback's and the champion's bookkeeping, the
error's monitor. For a quiet batch that is ~5 µs a row of calls, for work that is mostly sums.
Where nothing in a row can change how the next is served (no guard, no input or prediction
monitors, no slices, no challengers, the model warm and trusted, accuracy as the metric), the
rows are done by column: the error monitor sees each error in turn, and at its first alert the
rows up to it are settled, the alert is acted on, and the rest of the batch goes the per-event
way. The outputs and state are those of the per-event steps, to the bit
(``tests/test_batch_columns.py``).
"""

from __future__ import annotations

from typing import Any

from river import metrics

from driftline.learners.event_steps import EventSteps
from driftline.learners.slot import ModelSlot
from driftline.learners.task_metric import RollingAccuracy


def accuracy_before_each(metric: Any, hits: list[bool]) -> list[float]:
    """What River's ``Accuracy.get()`` gives before each of ``hits`` is scored (whole numbers
    in floats: exact up to 2**53, as the confusion matrix's own sums)."""
    cm = metric.cm
    right, seen = cm.total_true_positives, cm.total_weight
    before = []
    for hit in hits:
        before.append(right / seen if seen else 0.0)
        right += hit
        seen += 1
    return before


def update_accuracy(metric: Any, ys: list[Any], predictions: list[Any]) -> None:
    """``metric.update(y, p)`` for each pair, as one weighted update per distinct pair: the
    confusion matrix gets the same sums, keys in the same order (first seen first), and count."""
    pairs: dict[tuple[Any, Any], int] = {}
    for pair in zip(ys, predictions, strict=True):
        pairs[pair] = pairs.get(pair, 0) + 1
    cm = metric.cm
    for (y, prediction), count in pairs.items():
        cm.update(y, prediction, float(count))
    cm.n_samples += len(ys) - len(pairs)  # (each update above counted one sample)


class ColumnScoring(EventSteps):
    """The column path of :class:`driftline.learners.batch.MicroBatches`."""

    def _columns_possible(self) -> bool:
        """Whether this engine's settings let a row change nothing the next row's serving
        depends on but through its error's monitor (once per batch: no row changes them)."""
        cfg = self.config
        return (
            self.task == "classification"
            and type(self.metric) is metrics.Accuracy
            and (self.rolling is None or type(self.rolling) is RollingAccuracy)
            and not cfg.guard.enabled
            and self.features is None
            and self.prediction_monitor is None
            and self.slices is None
        )

    def _score_columns(
        self,
        slot: ModelSlot,
        events: list[tuple[dict[str, Any], int, int]],
        model_predictions: list[Any],
        probas: Any,
        version: int,
        start: int,
    ) -> int:
        """Serve, emit and score the labelled rows from ``start`` on by column, up to the first
        without a label or the first that moved the error's monitor's alarm; returns how many
        (0: the per-event steps do the next row). Only where :meth:`_columns_possible`."""
        cfg = self.config
        if (
            model_predictions[start] is None  # River could not predict the batch (all None)
            or slot.challengers
            or slot.version != version
            or type(slot.champion_metric) is not metrics.Accuracy
            # Warm (the fallback keeps no cold score) and trusted: the model serves every row.
            or slot.labels_learned < cfg.fallback.warmup_labels
            or (slot.alarm_active and not cfg.policy.trust_model_during_alarm)
        ):
            return 0
        ys: list[Any] = []
        for event, _, _ in events[start:]:
            y = event["y"]
            if y is None:
                break  # waits for its label: that row goes the per-event way
            ys.append(y)
        end = start + len(ys)
        predictions = model_predictions[start:end]
        if not ys:
            return 0
        alert = None
        if slot.monitored(predictions[0]):
            monitor = slot.monitor
            update, alarm = monitor.update, monitor.alarm_active  # type: ignore[union-attr]
            for row, (y, prediction) in enumerate(zip(ys, predictions, strict=True), start):
                alert = update(0.0 if prediction == y else 1.0, events[row][2])
                # An alarm may also start without an alert (one in its cooldown is not sent),
                # and it decides who serves the next row: the rows up to it are settled first.
                if alert is not None or monitor.alarm_active != alarm:  # type: ignore[union-attr]
                    end = row + 1
                    del ys[end - start :], predictions[end - start :]
                    break
        self._settle(slot, events[start:end], ys, predictions, probas[start:end], version)
        if alert is not None:
            self._on_alert(alert, slot, events[end - 1][0]["key"])
        return end - start

    def _settle(
        self,
        slot: ModelSlot,
        events: list[tuple[dict[str, Any], int, int]],
        ys: list[Any],
        predictions: list[Any],
        probas: Any,
        version: int,
    ) -> None:
        """The rows' records, scores and the bookkeeping besides the model, as the per-event
        steps (``_predicted``, ``_score``, ``learn_beside``) would leave them."""
        counters, metric = self.counters, self.metric
        hits = [y == prediction for y, prediction in zip(ys, predictions, strict=True)]
        labelled = counters["labelled"]
        values = accuracy_before_each(metric, hits)
        rolling = self.rolling.update_each(hits) if self.rolling is not None else None
        name, partition = self.metric_name, self.partition
        self.outputs.predictions.extend(
            [
                {
                    "id": event["id"],
                    "key": event["key"],
                    "prediction": prediction,
                    "confidence": proba[prediction] if proba and prediction in proba else None,
                    "proba": proba,
                    "model_version": version,
                    "source": "model",
                    "partition": partition,
                    "offset": offset,
                    "metric": {
                        "name": name,
                        "value": values[row],
                        "rolling": None if rolling is None else rolling[row],
                        "labels": labelled + row,
                    }
                    if labelled + row
                    else None,
                }
                for row, ((event, offset, _), prediction, proba) in enumerate(
                    zip(events, predictions, probas, strict=False)
                )
            ]
        )
        counters["predicted_by_model"] += len(ys)
        counters["labelled"] += len(ys)
        if self.scorecard is not None:
            for y, prediction in zip(ys, predictions, strict=True):
                self.scorecard.add(y, prediction, True)
        update_accuracy(metric, ys, predictions)
        update_accuracy(slot.champion_metric, ys, predictions)
        slot.fallback.learn_many(ys)
