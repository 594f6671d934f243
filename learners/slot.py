"""``ModelSlot``: one model and everything that decides whether to trust it.

A slot holds the live model, its version, how many labels it has learned, the baseline fallback,
the concept-drift monitor on its error, the background model started at a warning, and the last
good copy (pickled at each snapshot while no alarm was active) that ``rollback`` returns to.
The engine has one slot per partition, or one per key when per-key models are on.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from driftline.learners import pickling
from driftline.learners.challenger import Challenger, new_metric
from driftline.learners.champions import ChampionAndChallengers
from driftline.learners.config import LearningConfig
from driftline.learners.fallback import BaselineFallback
from driftline.learners.model_error import error_monitor, loss
from driftline.learners.models import build_model
from driftline.learners.prototypes import display_name


class ModelSlot(ChampionAndChallengers):
    """One model, its fallback, its error monitor and its drift actions; the champion/challenger
    half is :class:`~driftline.learners.champions.ChampionAndChallengers`."""

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
        self.champion_name = display_name(config.model.name, config.model.params)
        # "model" (the config's), or the origin of the challenger that became champion.
        self.champion_origin = "model"
        self.champion_metric = new_metric(self.classification)
        self.champion_since = 0
        self.promotions: list[dict[str, Any]] = []
        self.challengers: list[Challenger] = []
        self._next_cid = 0
        for name in config.policy.challengers:
            self._add_challenger(name, build_model(name, {}, task, binary=binary), "configured", 0)

    # ------------------------------------------------------------------ predict / learn

    def predict_model(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """The model's own prediction (``None`` when it raised or knows nothing yet)."""
        try:
            if self.has_proba:
                proba = self.model.predict_proba_one(x)
                if not proba:
                    return None, None
                if len(proba) == 2:
                    # Two classes (most models): max(proba, key=...) without its call overhead,
                    # the same answer on a tie (the first key).
                    first, second = proba
                    return (second if proba[second] > proba[first] else first), proba
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

    def learn(
        self,
        x: dict[str, Any],
        y: Any,
        model_prediction: Any = None,
        version: int | None = None,
        shadow: tuple[tuple[int, Any], ...] = (),
    ) -> bool:
        """Learn one label: what learns beside the model (:meth:`learn_beside`), then the model
        and its background model; ``False`` when the model raised."""
        self.learn_beside(x, y, model_prediction, version, shadow)
        return self._learn_models(lambda model: model.learn_one(x, y), 1)

    def learn_beside(
        self,
        x: dict[str, Any],
        y: Any,
        model_prediction: Any,
        version: int | None,
        shadow: tuple[tuple[int, Any], ...] = (),
    ) -> None:
        """What learns every label besides the model: the champion's metric and the fallback (both
        scored on the prediction of the model that made it, if it is still the champion), and the
        challengers, paired with their ``shadow`` predictions."""
        self.update_champion_metric(y, model_prediction, version)
        self.learn_fallback(y, model_prediction if version == self.version else None)
        if self.challengers:
            self._learn_challengers(x, y, model_prediction, version, shadow)

    def learn_many(self, frame: Any, labels: Any) -> bool:
        """Learn a micro-batch in one call (River's ``learn_many``): the model and its background
        model; what learns beside them has learned each row already (:meth:`learn_beside`)."""
        return self._learn_models(lambda model: model.learn_many(frame, labels), len(labels))

    def _learn_models(self, learn: Callable[[Any], Any], labels: int) -> bool:
        try:
            learn(self.model)
        except Exception:
            self.learn_errors += 1
            return False
        self.labels_learned += labels
        if self.background is not None:
            try:
                learn(self.background)
                self.background_labels += labels
            except Exception:  # a background model that raises is dropped; the model learned
                self.background = None
        return True

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
            self.last_good = pickling.dumps(self.model)
            self.last_good_version = self.version
            self._last_good_model = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last_good_model"] = None  # derivable from last_good
        return state
