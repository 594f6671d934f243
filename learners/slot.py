"""``ModelSlot``: one model and everything that decides whether to trust it.

A slot holds the live model, its version, how many labels it has learned, the baseline fallback,
the concept-drift monitor on its error, the background model started at a warning, and the last
good copy (pickled at each snapshot while no alarm was active) that ``rollback`` returns to.
The engine has one slot per partition, or one per key when per-key models are on.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

from detectors import ScaledMonitor, SignalMonitor
from learners.challenger import Challenger, new_metric, paired_test
from learners.config import LearningConfig
from learners.fallback import BaselineFallback
from learners.models import build_model

#: Defaults for the error signal, per detector kind (the user's `params` override them). ADWIN's
#: own delta (0.002) missed one of three abrupt drifts on sea-abrupt; 0.01 found all of them on
#: every built-in drifting stream with no false alarm on sea-stationary (two seeds each).
ERROR_DEFAULTS: dict[str, dict[str, Any]] = {"adwin": {"delta": 0.01}}


def error_monitor(config: LearningConfig, task: str) -> SignalMonitor | ScaledMonitor | None:
    """Concept drift watches the model's error: 0/1 for classification, |error| for regression
    (scaled by a reference window, as unbounded absolute errors would not fit one threshold)."""
    det = config.detectors.error
    if det.kind == "none":
        return None
    options: dict[str, Any] = {
        "warning": det.warning,
        "warning_overrides": det.warning_params,
        "direction": "up",
        "cooldown": det.cooldown,
        "recovery_events": det.recovery_events,
    }
    params = {**ERROR_DEFAULTS.get(det.kind, {}), **det.params}
    options.update(min_effect=det.min_effect, ert=det.ert, confirm_events=det.confirm_events)
    if task == "regression":
        return ScaledMonitor("error", det.kind, params, reference_size=500, **options)
    return SignalMonitor("error", det.kind, params, binary=True, **options)


def loss(prediction: Any, y: Any, classification: bool) -> float:
    """0/1 for classification, the absolute error for regression."""
    if classification:
        return 0.0 if prediction == y else 1.0
    return abs(float(y) - float(prediction))


class ModelSlot:
    def __init__(self, config: LearningConfig, task: str, binary: bool) -> None:
        self.config = config
        self.task = task
        self.binary = binary
        self.classification = task == "classification"
        self.model = self._fresh_model()
        self.has_proba = self._has_proba(self.model)
        self.version = 1
        self.labels_learned = 0  # by the current model: decides when it is warm
        self.fallback = BaselineFallback(task)
        self.monitor = error_monitor(config, task)
        self.background: Any | None = None
        self.background_labels = 0
        self.background_since = 0
        self.last_good: bytes | None = None
        self.last_good_version = 0
        self._last_good_model: Any | None = None  # unpickled on demand, for the fallback
        self.predict_errors = 0
        self.learn_errors = 0
        self.cold_model_loss = self.cold_fallback_loss = 0.0  # see learn_fallback
        self.champion_name = config.model.name
        # "model" (the config's), or the origin of the challenger that became champion.
        self.champion_origin = "model"
        self.champion_metric = new_metric(self.classification)
        self.champion_since = 0
        self.promotions: list[dict[str, Any]] = []
        self.challengers: list[Challenger] = []
        self._next_cid = 0
        for name in config.policy.challengers:
            self._add_challenger(name, build_model(name, {}, task, binary=binary), "configured", 0)

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

    @property
    def alarm_active(self) -> bool:
        return self.monitor is not None and self.monitor.alarm_active

    # ------------------------------------------------------------------ predict / learn

    def predict_model(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """The model's own prediction (``None`` when it raised or knows nothing yet)."""
        try:
            if self.has_proba:
                proba = self.model.predict_proba_one(x)
                if not proba:
                    return None, None
                return max(proba, key=proba.__getitem__), proba
            return self.model.predict_one(x), None
        except Exception:  # a model that raises must not stop the stream: fall back instead
            self.predict_errors += 1
            return None, None

    def monitored(self, model_prediction: Any) -> bool:
        """Whether this prediction's error goes to the drift monitor (not while warming up)."""
        return (
            self.monitor is not None
            and model_prediction is not None
            and self.labels_learned > self.config.detectors.error.warmup
        )

    def use_fallback(self, model_prediction: Any) -> bool:
        return (
            model_prediction is None
            or (
                self.labels_learned < self.config.fallback.warmup_labels
                and self.cold_fallback_loss <= self.cold_model_loss
            )
            or (self.alarm_active and not self.config.policy.trust_model_during_alarm)
        )

    def learn_fallback(self, y: Any, model_prediction: Any) -> None:
        """The fallback learns every label. While the model is cold both are scored on it: the
        fallback serves a cold model only while it has been at least as good so far (a
        majority class is no help where a fresh model learns in a few events)."""
        if (
            self.labels_learned < self.config.fallback.warmup_labels
            and model_prediction is not None
        ):
            guess = self.fallback.predict()[0]
            if guess is not None:
                self.cold_model_loss += loss(model_prediction, y, self.classification)
                self.cold_fallback_loss += loss(guess, y, self.classification)
        self.fallback.learn(y)

    def _new_champion(self, index: int) -> None:
        """Book-keeping for a model that has just replaced the champion."""
        self.version += 1
        self.champion_metric = new_metric(self.classification)
        self.champion_since = index
        self.cold_model_loss = self.cold_fallback_loss = 0.0

    def predict_fallback(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        if self.config.fallback.kind == "snapshot" and self.last_good is not None:
            if self._last_good_model is None:
                self._last_good_model = pickle.loads(self.last_good)
            try:
                if self.classification:
                    proba = self._last_good_model.predict_proba_one(x)
                    if proba:
                        return max(proba, key=proba.__getitem__), proba
                else:
                    return self._last_good_model.predict_one(x), None
            except Exception:
                self.predict_errors += 1
        return self.fallback.predict()

    def shadow_predictions(self, x: dict[str, Any]) -> tuple[tuple[int, Any], ...]:
        """Every challenger's prediction of an event, made before any of them learns it."""
        return tuple((c.cid, c.predict(x)) for c in self.challengers)

    def learn(
        self,
        x: dict[str, Any],
        y: Any,
        model_prediction: Any = None,
        version: int | None = None,
        shadow: tuple[tuple[int, Any], ...] = (),
    ) -> bool:
        self.learn_fallback(y, model_prediction if version == self.version else None)
        if self.challengers:
            self._learn_challengers(x, y, model_prediction, version, shadow)
        try:
            self.model.learn_one(x, y)
        except Exception:
            self.learn_errors += 1
            return False
        self.labels_learned += 1
        if self.background is not None:
            try:
                self.background.learn_one(x, y)
                self.background_labels += 1
            except Exception:
                self.background = None
        return True

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

    def update_champion_metric(self, y: Any, model_prediction: Any, version: int) -> None:
        if model_prediction is not None and version == self.version:
            self.champion_metric.update(y, model_prediction)

    # ------------------------------------------------------------------ champion / challenger

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

    # ------------------------------------------------------------------ drift actions

    def start_background(self, index: int) -> bool:
        if self.background is not None:
            return False
        self.background = self._fresh_model()
        self.background_labels = 0
        self.background_since = index
        return True

    def drop_stale_background(self, index: int) -> None:
        """A warning that never became a drift: its background model is not needed."""
        if (
            self.background is not None
            and not self.alarm_active
            and index - self.background_since > self.config.detectors.error.recovery_events
        ):
            self.background = None

    def apply(self, action: str, index: int = 0) -> str:
        """Carry out a drift action; returns what was actually done."""
        if action == "none":
            return "none"
        if action == "challenger":
            # Never a swap on a detector's word: a challenger must win on the labels first.
            started = self.start_challenger(index)
            return "challenger started" if started else "challenger already learning"
        done = action
        if action == "background" and self.background is not None and self.background_labels:
            self.model, self.labels_learned = self.background, self.background_labels
        elif action == "rollback" and self.last_good is not None:
            self.model = pickle.loads(self.last_good)
            # A rolled-back model was warm when it was saved: trust it at once.
            self.labels_learned = self.config.fallback.warmup_labels
        else:
            done = "reset" if action == "reset" else f"reset ({action}: nothing to use yet)"
            self.model = self._fresh_model()
            self.labels_learned = 0
        self.background = None
        self._new_champion(index)
        if self.monitor is not None:
            self.monitor.reset()  # the old model's errors say nothing about the new one
        return done

    def mark_good(self) -> None:
        """Remember the current model as the rollback target, unless it is under suspicion."""
        if not self.alarm_active and self.labels_learned >= self.config.fallback.warmup_labels:
            self.last_good = pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL)
            self.last_good_version = self.version
            self._last_good_model = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last_good_model"] = None  # derivable from last_good
        return state
