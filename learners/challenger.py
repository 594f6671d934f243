"""Champion / challenger: models that learn in shadow and replace the champion only when they are
significantly better on the same labels.

Every challenger predicts each event before it learns it (prequential, like the champion), so each
label gives a *pair*: the champion's loss and the challenger's loss on the same event. Over the last
``window`` pairs a one-sided paired test asks whether the challenger is better:

* classification: McNemar's exact test on the discordant pairs (champion right and challenger
  wrong: ``b``; the reverse: ``c``): ``p = P(X >= c)`` for ``X ~ Binomial(b + c, 1/2)``;
* regression: the mean of ``|e_champion| - |e_challenger|`` against 0 (a paired z-test; the window
  holds hundreds of pairs, where the normal approximation of Student's t is close).

>>> pairs = [(1.0, 0.0)] * 30 + [(0.0, 1.0)] * 10 + [(0.0, 0.0)] * 160
>>> result = paired_test(pairs, classification=True)
>>> round(result["p_value"], 4), result["champion_loss"], result["challenger_loss"]
(0.0011, 0.15, 0.05)
>>> paired_test([(0.5, 0.5)] * 50, classification=False)["p_value"]
1.0
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist
from typing import Any

from river import metrics


def _binomial_tail(successes: int, trials: int) -> float:
    """``P(X >= successes)`` for ``X ~ Binomial(trials, 1/2)``, exactly."""
    if successes <= 0:
        return 1.0
    tail = sum(math.comb(trials, k) for k in range(successes, trials + 1))
    return min(1.0, tail / 2.0**trials)


def paired_test(pairs: Any, *, classification: bool) -> dict[str, Any]:
    """One-sided test that the second loss of each ``(champion, challenger)`` pair is smaller."""
    n = len(pairs)
    champion = sum(c for c, _ in pairs) / n if n else float("nan")
    challenger = sum(h for _, h in pairs) / n if n else float("nan")
    if classification:
        b = sum(1 for c, h in pairs if c < h)  # champion right, challenger wrong
        c = sum(1 for c, h in pairs if c > h)
        p_value = _binomial_tail(c, b + c) if c > b else 1.0
        test = "mcnemar_exact"
    else:
        diffs = [c - h for c, h in pairs]
        mean = sum(diffs) / n if n else 0.0
        var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
        if mean <= 0 or n < 2:
            p_value = 1.0
        elif var == 0:
            p_value = 0.0
        else:
            p_value = 1.0 - NormalDist().cdf(mean / math.sqrt(var / n))
        test = "paired_abs_error"
    return {
        "test": test,
        "p_value": p_value,
        "n": n,
        "champion_loss": champion,
        "challenger_loss": challenger,
    }


def new_metric(classification: bool) -> Any:
    return metrics.Accuracy() if classification else metrics.MAE()


class Challenger:
    """One model learning in shadow: its own prequential metric and its loss pairs."""

    #: (A class default too: challengers restored from older snapshots lack the attribute.)
    winning_since: int | None = None

    def __init__(
        self,
        cid: int,
        name: str,
        model: Any,
        origin: str,
        started_at: int,
        *,
        classification: bool,
        window: int,
    ) -> None:
        self.cid = cid
        self.name = name
        self.model = model
        self.origin = origin  # "fresh" (started at an alarm), "configured", "former champion"
        self.started_at = started_at
        self.labels = 0
        self.shadow_labels = 0  # learned as a challenger (a former champion brings its past)
        self.metric = new_metric(classification)
        self.pairs: deque[tuple[float, float]] = deque(maxlen=window)
        self.since_check = 0
        self.failed = False
        #: Its shadow labels at the first of an unbroken run of significant wins (None: losing).
        self.winning_since: int | None = None

    def predict(self, x: dict[str, Any]) -> Any:
        try:
            return self.model.predict_one(x)
        except Exception:  # a challenger that raises loses its pair, never the stream
            return None

    def learn(self, x: dict[str, Any], y: Any) -> None:
        try:
            self.model.learn_one(x, y)
        except Exception:
            self.failed = True
            return
        self.labels += 1
        self.shadow_labels += 1

    def describe(self) -> dict[str, Any]:
        value = self.metric.get() if self.labels else None
        return {
            "name": self.name,
            "role": "challenger",
            "origin": self.origin,
            "metric": None if value is None or math.isnan(value) else value,
            "labels": self.labels,
            "started_at": self.started_at,
        }
