"""Micro-batch mode: one ``predict_proba_many`` / ``learn_many`` call per batch where the model has
them. Detectors, guard, metric and outputs still see every event, in order, through the same
steps as the per-event loop (:mod:`driftline.learners.event_steps`); only predicting and learning the
model are done for the whole batch at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from driftline.learners.batch_admission import BatchAdmission
from driftline.learners.batch_columns import ColumnScoring
from driftline.learners.columns import plain_features
from driftline.learners.events import Decoded


def _checked_features(raws: list[Any], max_abs: float) -> tuple[list[Any], Any] | None:
    """:func:`plain_features` of the events' ``x``, when every event is a decoded object (an
    empty batch, bytes or text: ``None``, and the per-event checks)."""
    xs = []
    decoded = True  # names from JSON are exactly str
    for raw in raws:
        if type(raw) is Decoded:
            value = raw.value
        else:
            value, decoded = raw, False
        if type(value) is not dict:
            return None
        xs.append(value.get("x"))
    return plain_features(xs, max_abs, text_names=decoded) if xs else None


def _proba_dicts(classes: list[Any], rows: list[list[float]]) -> list[dict[Any, float]]:
    """Each row's probabilities by class, as ``predict_proba_one`` gives them."""
    if len(classes) == 2:
        # Two classes (most models): a dict display is ~5x faster per row than dict(zip()).
        first, second = classes
        return [{first: p, second: q} for p, q in rows]
    return [dict(zip(classes, row, strict=True)) for row in rows]


def _has_many(model: Any, classification: bool) -> bool:
    predict = "predict_proba_many" if classification else "predict_many"
    if classification and not callable(getattr(model, "predict_proba_one", None)):
        return False  # a predict_one-only model: the per-event path handles it
    return callable(getattr(model, predict, None)) and callable(getattr(model, "learn_many", None))


class MicroBatches(ColumnScoring, BatchAdmission):
    """The micro-batch path of :class:`driftline.learners.engine.Engine`."""

    process: Callable[..., None]  # the engine's per-event loop

    def _inputs(
        self, features: list[dict[str, Any]], frame: Any = None
    ) -> tuple[list[dict[str, Any]], Any]:
        """The model inputs of a batch's validated feature dicts, and their frame (``frame``:
        theirs already, when :func:`plain_features` checked them).

        The encoder gives back a dict itself when every value is a number and every name is
        known already (:meth:`FeatureEncoder.encode`). A frame of such dicts has only integer
        and float columns named by known names, and the other way round: then the batch is its
        own input, and the frame made from it is the one, with no call per row. Any other batch
        is encoded row by row. Missing features are absent in per-event mode; a frame needs a
        value: the raw value 0."""
        if frame is not None:
            if frame.columns.isin(self.encoder.names).all():
                return features, frame
        elif all((kind := type(value)) is float or kind is int for value in features[0].values()):
            # (Only when the first row looks plain: a batch with text features is encoded
            # right away, not framed twice.)
            frame = pd.DataFrame.from_records(features)
            if frame.columns.isin(self.encoder.names).all() and all(
                dtype.kind in "if" for dtype in frame.dtypes
            ):
                return features, frame.fillna(0.0)
        encode, counters = self.encoder.encode, self.counters
        xs = [encode(x, counters) for x in features]
        return xs, pd.DataFrame.from_records(xs).fillna(0.0)

    def process_batch(
        self,
        raws: list[bytes | str | dict[str, Any] | Decoded],
        offsets: list[int] | None = None,
        record_ts: float | None = None,
    ) -> None:
        """Process a micro-batch: predict all with the model as it was, then learn all.

        Uses River's ``predict_proba_many`` / ``learn_many`` when the model has them (one mean
        gradient per batch for linear models: not the same numbers as looping ``learn_one``);
        otherwise, and for a batch of fewer than ``engine.batch_min`` events (and than
        ``engine.batch_size``), the same per-event path. Outputs have the same shape either way.
        """
        if offsets is None:
            offsets = list(range(self.index, self.index + len(raws)))
        # Per-key models, an unknown task or a model without *_many: the per-event path.
        slot = self._slot(None) if not self.config.model.per_key else None
        classification = self.task == "classification"
        cfg = self.config.engine
        # Challengers predict each event before they learn it: the per-event path does that.
        # So does a batch cut short, which would cost more per event through *_many.
        if (
            slot is None
            or not _has_many(slot.model, classification)
            or slot.challengers
            or 0 < len(raws) < min(cfg.batch_min, cfg.batch_size)  # (empty: _after_events)
        ):
            for raw, offset in zip(raws, offsets, strict=True):
                self.process(raw, offset, record_ts)
            return

        checked = _checked_features(raws, cfg.max_abs_value)
        checked_xs: list[Any] = checked[0] if checked is not None else [None] * len(raws)
        events = self._admit_rows(raws, offsets, record_ts, checked_xs)
        if not events:
            self._after_events()
            return

        if checked is not None and len(events) == len(raws):
            xs, frame = self._inputs(checked_xs, checked[1])  # every row came in: its frame
        else:
            xs, frame = self._inputs([event["x"] for event, _, _ in events])
        model_predictions: list[Any] = [None] * len(xs)
        probas: Sequence[dict[Any, float] | None] = [None] * len(xs)
        try:
            if classification:
                proba_frame = slot.model.predict_proba_many(frame)
                if proba_frame.shape[1]:
                    # numpy, not DataFrame.to_dict: that alone costs more than the model per row.
                    classes = list(proba_frame.columns)
                    table = proba_frame.to_numpy()
                    model_predictions = [classes[i] for i in table.argmax(axis=1).tolist()]
                    probas = _proba_dicts(classes, table.tolist())
            else:
                model_predictions = slot.model.predict_many(frame).tolist()
        except Exception:
            slot.predict_errors += 1

        # Every row was predicted by the model as it was at the start of the batch.
        version = slot.version
        learn_rows: list[int] = []
        guard_on = self.config.guard.enabled
        columns = self._columns_possible()
        row = 0
        while row < len(events):
            # A quiet stretch of labelled rows by column (none when a row may change how the
            # next is served), then the next row through the per-event steps.
            if columns:
                done = self._score_columns(slot, events, model_predictions, probas, version, row)
                learn_rows += range(row, row + done)
                row += done
                if row == len(events):
                    break
            (event, offset, index), xm = events[row], xs[row]
            y = event["y"]
            flagged = guard_on and self._guard(event["x"], y, index)
            model_prediction = model_predictions[row]
            entry = self._predicted(
                event, offset, index, slot, xm, model_prediction, probas[row], version, flagged
            )
            if entry is not None and self._score(entry, y):  # else: waits, or flagged
                slot.learn_beside(xm, y, model_prediction, version, entry[7])
                learn_rows.append(row)
                # After a model was replaced inside the batch, its rows' errors (predicted by
                # the replaced model) say nothing about the new one, whose monitor starts afresh.
                self._watch_error(slot, entry[0], model_prediction, y, version, index, entry[8])
            row += 1

        if learn_rows:
            batch_x = frame if len(learn_rows) == len(frame) else frame.iloc[learn_rows]
            labels = [events[row][0]["y"] for row in learn_rows]
            if slot.learn_many(batch_x, pd.Series(labels, index=batch_x.index)):
                self.counters["learned"] += len(learn_rows)
        slot.drop_stale_background(self.index)
        self._after_events()
