"""The champion and its challengers: models learning in shadow on the same labels, and the
promotion of one that is significantly better (a paired test, Bonferroni over its life).

A mixin of :class:`driftline.learners.slot.ModelSlot` (which sets every attribute below): the champion is the
slot's ``model``; the slot's predict/learn/fallback and drift actions live in :mod:`driftline.learners.slot`.
"""

from __future__ import annotations

import math
from typing import Any

from driftline.detectors import ScaledMonitor, SignalMonitor
from driftline.learners.challenger import Challenger, new_metric, paired_test
from driftline.learners.config import LearningConfig
from driftline.learners.model_error import loss
from driftline.learners.models import build_model


class ChampionAndChallengers:
    """The champion/challenger half of :class:`driftline.learners.slot.ModelSlot`."""

    config: LearningConfig
    task: str
    binary: bool
    classification: bool
    model: Any
    has_proba: bool
    version: int
    labels_learned: int
    monitor: SignalMonitor | ScaledMonitor | None
    background: Any | None
    cold_model_loss: float
    cold_fallback_loss: float
    champion_name: str
    champion_origin: str
    champion_metric: Any
    champion_since: int
    promotions: list[dict[str, Any]]
    challengers: list[Challenger]
    _next_cid: int

    @property
    def alarm_active(self) -> bool:
        return self.monitor is not None and self.monitor.alarm_active

    def _has_proba(self, model: Any) -> bool:
        # A user's model may have predict_one only: then there are no class probabilities.
        return self.classification and callable(getattr(model, "predict_proba_one", None))

    def _fresh_model(self) -> Any:
        spec = self.config.model
        return build_model(spec.name, spec.params, self.task, binary=self.binary)

    def _add_challenger(self, name: str, model: Any, origin: str, index: int) -> Challenger:
        self._next_cid += 1
        challenger = Challenger(
            self._next_cid,
            name,
            model,
            origin,
            index,
            classification=self.classification,
            window=self.config.policy.promote_window,
        )
        self.challengers.append(challenger)
        return challenger

    def _new_champion(self, index: int) -> None:
        """Book-keeping for a model that has just replaced the champion."""
        self.version += 1
        self.champion_metric = new_metric(self.classification)
        self.champion_since = index
        self.cold_model_loss = self.cold_fallback_loss = 0.0

    def shadow_predictions(self, x: dict[str, Any]) -> tuple[tuple[int, Any], ...]:
        """Every challenger's prediction of an event, made before any of them learns it."""
        return tuple((c.cid, c.predict(x)) for c in self.challengers)

    def _learn_challengers(
        self,
        x: dict[str, Any],
        y: Any,
        model_prediction: Any,
        version: int | None,
        shadow: tuple[tuple[int, Any], ...],
    ) -> None:
        classification = self.classification
        # A pair needs the current champion's own prediction of the same event.
        champion_loss = (
            loss(model_prediction, y, classification)
            if model_prediction is not None and version == self.version
            else None
        )
        predicted = dict(shadow)
        for challenger in self.challengers:
            guess = predicted.get(challenger.cid)
            if guess is not None:
                challenger.metric.update(y, guess)
                if champion_loss is not None:
                    challenger.pairs.append((champion_loss, loss(guess, y, classification)))
                    challenger.since_check += 1
            challenger.learn(x, y)

    def update_champion_metric(self, y: Any, model_prediction: Any, version: int | None) -> None:
        if model_prediction is not None and version == self.version:
            self.champion_metric.update(y, model_prediction)

    def start_challenger(self, index: int) -> bool:
        """A fresh model learning in shadow from now on (one at a time)."""
        if any(c.origin == "fresh" for c in self.challengers):
            return False
        self._add_challenger(self.champion_name, self._fresh_model(), "fresh", index)
        return True

    @property
    def per_test_alpha(self) -> float:
        """``promote_alpha`` spent over a challenger's life: it is tested every
        ``promote_every`` labels for up to ``challenger_max_labels``, so each test runs at
        ``promote_alpha * promote_every / challenger_max_labels`` (Bonferroni), and a model no
        better than the champion is promoted with probability at most ``promote_alpha``."""
        policy = self.config.policy
        return policy.promote_alpha * min(1.0, policy.promote_every / policy.challenger_max_labels)

    def maybe_promote(self, index: int) -> dict[str, Any] | None:
        """Promote the challenger that is significantly better than the champion on the same
        recent labels, if there is one; returns the evidence, or ``None``."""
        policy = self.config.policy
        best: tuple[float, Challenger, dict[str, Any]] | None = None
        for challenger in list(self.challengers):
            if challenger.failed:
                self.challengers.remove(challenger)
                continue
            if (
                challenger.since_check < policy.promote_every
                or len(challenger.pairs) < policy.promote_min_labels
            ):
                continue
            challenger.since_check = 0
            result = paired_test(challenger.pairs, classification=self.classification)
            if result["p_value"] >= self.per_test_alpha:
                challenger.winning_since = None  # a hold restarts at the next win
                continue
            if challenger.winning_since is None:
                challenger.winning_since = challenger.shadow_labels
            if challenger.shadow_labels - challenger.winning_since < policy.promote_hold_labels:
                continue  # significantly better, not yet for long enough
            if best is None or result["p_value"] < best[0]:
                best = (result["p_value"], challenger, result)
        # The winner first: a challenger at its last test may win rather than expire.
        evidence = self._promote(best[1], best[2], index) if best is not None else None
        self._expire_challengers(index)
        return evidence

    def _promote(
        self, challenger: Challenger, result: dict[str, Any], index: int
    ) -> dict[str, Any]:
        champion_metric = self.champion_metric.get()
        evidence = {
            **result,
            "champion": {
                "name": self.champion_name,
                "version": self.version,
                "metric": None if math.isnan(champion_metric) else champion_metric,
                "window_loss": result["champion_loss"],
            },
            "challenger": {**challenger.describe(), "window_loss": result["challenger_loss"]},
        }
        if self.monitor is not None and (challenger.origin == "fresh" or self.monitor.pending):
            # A model started at a warning, knowing only the recent data, beats the one that
            # knows all of it: the concept changed (Bach & Maloof's paired learners). Any winner
            # also settles an alarm that waits for confirmation (the reset below would drop
            # it). The paired test is the significance test; the effect is the champion's
            # error over the window against its reference.
            evidence["drift"] = self.monitor.confirm_by_test(
                index,
                challenger.started_at,
                result["champion_loss"],
                result["n"],
                result["test"],
            )
        self.challengers.remove(challenger)
        # The old champion keeps learning in shadow and wins back if the new one falls behind
        # it later (a fresh model can win early on a change and plateau below the old one).
        # A configured challenger stays one (it always learns in shadow); others expire in time.
        demoted = "configured" if self.champion_origin == "configured" else "former champion"
        former = self._add_challenger(self.champion_name, self.model, demoted, index)
        former.labels = self.labels_learned
        self.champion_origin = challenger.origin
        self.model, self.champion_name = challenger.model, challenger.name
        self.has_proba = self._has_proba(self.model)  # a challenger may be another kind
        self.labels_learned = challenger.labels
        self.background = None
        self._new_champion(index)
        self.champion_metric = challenger.metric  # its own record, kept
        for other in self.challengers:
            other.pairs.clear()  # their pairs were against the old champion
        if self.monitor is not None:
            self.monitor.reset()  # the old model's errors say nothing about the new one
        self.promotions.append({"index": index, "name": challenger.name, "version": self.version})
        del self.promotions[:-100]
        return evidence

    def _expire_challengers(self, index: int) -> None:
        """A fresh challenger (or a former champion) that did not win within
        ``challenger_max_labels`` labels in shadow, while no alarm is active, is dropped: the
        change it was started for did not need it. Configured challengers stay."""
        limit = self.config.policy.challenger_max_labels
        self.challengers = [
            c
            for c in self.challengers
            if c.origin == "configured" or c.shadow_labels < limit or self.alarm_active
        ]

    def describe_models(self) -> list[dict[str, Any]]:
        value = self.champion_metric.get()
        champion = {
            "name": self.champion_name,
            "role": "champion",
            "version": self.version,
            "metric": None if math.isnan(value) else value,
            "labels": self.labels_learned,
            "since": self.champion_since,
            "promotions": len(self.promotions),
        }
        return [champion, *(c.describe() for c in self.challengers)]
