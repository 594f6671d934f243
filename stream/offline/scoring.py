"""Honest scores for a backtest: detections against known drift points, baselines, intervals.

**Detections.** A true drift ``d`` (whose change lasts ``width`` events) is detected by the first
alarm at or after ``d``, before the next true drift and within ``width + max_delay`` events. Later
alarms inside that window repeat the same change: neither a hit nor a false alarm. Any other alarm
is a false alarm. Named as CapyMOA's ``EvaluateDriftDetector`` names them: precision (hits over
hits and false alarms), recall (drifts found), F1, mean detection delay, false alarms per 10,000
events.

>>> scores = score_detections([{"kind": "drift", "index": 5100}, {"kind": "drift", "index": 7000},
...     {"kind": "warning", "index": 9000}], true_drifts=[5000, 10000], max_delay=1000, events=20000)
>>> scores["detected"], scores["detection_delays"], scores["false_alarms"], scores["missed_drifts"]
([5000], [100], 1, 1)
>>> scores["precision"], scores["recall"], scores["f1"], scores["false_alarms_per_10k"]
(0.5, 0.5, 0.5, 0.5)

**For scale**, a periodic dummy detector with as many alarms, evenly spaced (river#1963: on dense
drifts a dummy can match a real detector on F1):

>>> periodic_alarms(3, 20000)
[5000, 10000, 15000]
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Student's t (0.975) for the batch-means interval's BLOCKS - 1 degrees of freedom.
BLOCKS = 20
T_975_19DF = 2.093


def score_detections(
    alerts: Sequence[Mapping[str, Any]],
    true_drifts: Sequence[int],
    max_delay: int,
    *,
    events: int = 0,
    width: int = 0,
    kinds: Iterable[str] = ("drift",),
) -> dict[str, Any]:
    wanted = set(kinds)
    drifts = sorted(true_drifts)
    windows = [
        (d, min(d + width + max_delay, drifts[i + 1] if i + 1 < len(drifts) else math.inf))
        for i, d in enumerate(drifts)
    ]
    first: dict[int, int] = {}
    false_alarms = 0
    alarms = sorted(a["index"] for a in alerts if a["kind"] in wanted)
    for index in alarms:
        hit = next((d for d, end in windows if d <= index < end), None)
        if hit is None:
            false_alarms += 1
        else:
            first.setdefault(hit, index)
    delays = [first[d] - d for d in drifts if d in first]
    hits = len(delays)
    precision = hits / (hits + false_alarms) if hits + false_alarms else None
    recall = hits / len(drifts) if drifts else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision is not None and recall is not None and precision + recall
        else None
    )
    return {
        "detection_delay_mean": sum(delays) / len(delays) if delays else None,
        "detected": [d for d in drifts if d in first],
        "detection_delays": delays,
        "false_alarms": false_alarms,
        "missed_drifts": len(drifts) - hits,
        "alarms": len(alarms),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarms_per_10k": 10_000 * false_alarms / events if events else None,
    }


def periodic_alarms(count: int, events: int) -> list[int]:
    """``count`` alarms spread evenly over ``events`` (the dummy detector's)."""
    return [round(events * (k + 1) / (count + 1)) for k in range(count)]


class Scorecard:
    """Every scored prediction's loss, in order, and the no-change baseline on the same labels.

    The no-change baseline predicts the previous label seen (in the order labels are scored):
    Elec2-like streams with autocorrelated labels make it a strong baseline.

    >>> card = Scorecard()
    >>> for y, guess in [(1, 1), (1, 0), (0, 0), (0, 0), (1, 1)]:
    ...     card.add(y, guess, True)
    >>> card.metric(), card.no_change_metric()
    (0.8, 0.5)
    >>> round(card.kappa_temporal(), 2)
    0.6
    """

    def __init__(self) -> None:
        self.classification = True  # set by the first label scored (the engine knows the task)
        # Packed doubles: a million-event backtest keeps two of these (8 bytes a label, not 32).
        self.losses = array("d")
        self.no_change_losses = array("d")
        self._previous: Any = None
        self._has_previous = False

    def _loss(self, y: Any, guess: Any) -> float:
        if self.classification:
            return 0.0 if guess == y else 1.0
        return abs(float(y) - float(guess))

    def add(self, y: Any, prediction: Any, classification: bool) -> None:
        """One label in scoring order; ``prediction`` is ``None`` when nothing could predict
        (the label still becomes the no-change baseline's next guess)."""
        self.classification = classification
        if prediction is not None:
            self.losses.append(self._loss(y, prediction))
        if self._has_previous:
            self.no_change_losses.append(self._loss(y, self._previous))
        self._previous, self._has_previous = y, True

    def _as_metric(self, losses: Sequence[float]) -> float | None:
        if not losses:
            return None
        mean = sum(losses) / len(losses)
        return 1.0 - mean if self.classification else mean

    def metric(self) -> float | None:
        """Accuracy (classification) or MAE (regression) of what was served."""
        return self._as_metric(self.losses)

    def no_change_metric(self) -> float | None:
        return self._as_metric(self.no_change_losses)

    def kappa_temporal(self) -> float | None:
        """Žliobaitė et al. (2015): ``(acc - acc_no_change) / (1 - acc_no_change)``; below 0 the
        model is worse than repeating the last label (classification only)."""
        acc, base = self.metric(), self.no_change_metric()
        if not self.classification or acc is None or base is None or base >= 1.0:
            return None
        return (acc - base) / (1.0 - base)


def adaptation_interval(adapted: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """Did adapting pay? ``gain`` is the baseline's mean loss minus the adapted run's on the same
    labels (accuracy points for classification, MAE removed for regression: above 0 is better),
    with a 95% interval by batch means: the labels are cut into 20 contiguous blocks, so the
    autocorrelation of a stream does not make the interval falsely narrow.

    >>> same = [0.0, 1.0] * 500
    >>> adaptation_interval(same, same)["verdict"]
    'no measurable difference'
    >>> adaptation_interval([0.0] * 1000, same)["verdict"]
    'adaptation paid'
    """
    n = min(len(adapted), len(baseline))
    if n < BLOCKS * 10:
        return {"gain": None, "interval": None, "verdict": "too few labels to tell"}
    gains = [baseline[i] - adapted[i] for i in range(n)]
    size = n // BLOCKS
    bounds = [(b * size, (b + 1) * size if b < BLOCKS - 1 else n) for b in range(BLOCKS)]
    block_means = [sum(gains[lo:hi]) / (hi - lo) for lo, hi in bounds]
    gain = sum(gains) / n
    spread = math.sqrt(sum((m - gain) ** 2 for m in block_means) / (BLOCKS - 1) / BLOCKS)
    low, high = gain - T_975_19DF * spread, gain + T_975_19DF * spread
    if low > 0:
        verdict = "adaptation paid"
    elif high < 0:
        verdict = "adaptation lost"
    else:
        verdict = "no measurable difference"
    return {"gain": gain, "interval": [low, high], "verdict": verdict}
