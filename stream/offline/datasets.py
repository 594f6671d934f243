"""Built-in synthetic streams with known drift points, generated offline and lazily.

Every dataset yields events in the event contract (:mod:`driftline.learners.events`)::

    {"id": 0, "ts": 1704067200000, "x": {"x1": 6.39, "x2": 0.25, "x3": 2.75}, "y": False}

``id`` is the 0-based event index, ``ts`` starts at 2024-01-01T00:00:00Z and advances one second per
event, features are plain Python floats. ``true_drifts`` are the 0-based indices where the concept
starts to change: for an abrupt drift the first event of the new concept, for a gradual drift the
first event of its transition window (which lasts ``drift_width`` events).

The generators come from :mod:`river.datasets.synth`; abrupt drifts are built by concatenating
generators (river's ``ConceptDriftStream`` overflows for narrow widths) and gradual drifts by a
seeded mixture whose probability of the new concept follows a sigmoid over the window.

>>> ds = get_dataset("sea-abrupt")
>>> ds.true_drifts, ds.size, ds.task
((5000, 10000, 15000), 20000, 'classification')
>>> first = next(ds.events(limit=1))
>>> first["id"], first["ts"], sorted(first["x"]), type(first["y"]).__name__
(0, 1704067200000, ['x1', 'x2', 'x3'], 'bool')
>>> [e["id"] for e in ds.events(limit=3)]
[0, 1, 2]
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: Timestamp of event 0: 2024-01-01T00:00:00Z in epoch milliseconds; events are one second apart.
START_TS_MS = 1_704_067_200_000
TS_STEP_MS = 1000

Pair = tuple[dict[str, Any], Any]
#: A stream source: seed -> unbounded iterator of ``(features, label)`` pairs.
Source = Callable[[int], Iterator[Pair]]
T = TypeVar("T")


@dataclass(frozen=True)
class Dataset:
    """A named stream with its ground truth.

    ``true_drifts`` are reported for the default ``size`` whatever ``limit`` a caller passes to
    :meth:`events`; a caller that truncates filters them itself.
    """

    name: str
    description: str
    task: str
    size: int
    true_drifts: tuple[int, ...]
    drift_kind: str
    #: Events over which each change is spread (0 for abrupt drifts).
    drift_width: int = field(default=0, kw_only=True)
    source: Source = field(kw_only=True, repr=False, compare=False)

    def events(self, limit: int | None = None, seed: int = 42) -> Iterator[dict[str, Any]]:
        """Yield ``limit`` events (default ``size``), deterministic for ``seed``.

        The generators are unbounded: a ``limit`` above ``size`` continues in the last concept.

        >>> ds = get_dataset("friedman-drift")
        >>> e = next(ds.events(seed=1))
        >>> len(e["x"]), isinstance(e["y"], float)
        (10, True)
        """
        count = self.size if limit is None else limit
        if count < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return _as_events(self.source(seed), count)


def _as_events(pairs: Iterable[Pair], count: int) -> Iterator[dict[str, Any]]:
    for i, (x, y) in enumerate(itertools.islice(pairs, count)):
        yield {"id": i, "ts": START_TS_MS + TS_STEP_MS * i, "x": x, "y": y}


def _sub_seeds(seed: int, count: int) -> list[int]:
    # One independent seed per concept: seed + k would make seed 43's first concept equal to
    # seed 42's second one.
    rng = random.Random(seed)
    return [rng.getrandbits(32) for _ in range(count)]


def _sigmoid(z: float) -> float:
    # Two branches so that exp never sees a large positive argument.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


_RAMP_EDGE = 4.0


def transition_probability(offset: int, width: int) -> float:
    """Probability of drawing from the new concept ``offset`` events into a transition.

    A sigmoid over ``[-4, 4]`` rescaled to go exactly from 0 at the start of the window to 1 at its
    end, so the transition lies inside ``[start, start + width)``.

    >>> [round(transition_probability(k, 100), 3) for k in (-5, 0, 50, 99, 100, 10**9)]
    [0.0, 0.0, 0.5, 0.998, 1.0, 1.0]
    """
    if offset <= 0:
        return 0.0
    if offset >= width:
        return 1.0
    z = _RAMP_EDGE * (2.0 * offset / width - 1.0)
    low, high = _sigmoid(-_RAMP_EDGE), _sigmoid(_RAMP_EDGE)
    return (_sigmoid(z) - low) / (high - low)


def _switching(
    concepts: Sequence[Iterator[T]], starts: Sequence[int], width: int, rng: random.Random
) -> Iterator[T]:
    """Concept ``k`` up to ``starts[k]``, then concept ``k + 1``; mixed over ``width`` events."""
    if len(concepts) != len(starts) + 1:
        raise ValueError("need one more concept than drift points")
    if any(b - a < width for a, b in itertools.pairwise(starts)):
        raise ValueError("transition windows must not overlap")
    for i in itertools.count():
        k = bisect.bisect_right(starts, i)  # concepts[k] is the newest concept begun by event i
        if k and width and i < starts[k - 1] + width:
            p_new = transition_probability(i - starts[k - 1], width)
            if rng.random() >= p_new:
                k -= 1
        yield next(concepts[k])


def _sea(variants: Sequence[int], starts: Sequence[int], width: int = 0) -> Source:
    def source(seed: int) -> Iterator[Pair]:
        from river.datasets import synth

        *seeds, mix_seed = _sub_seeds(seed, len(variants) + 1)
        concepts = [
            iter(synth.SEA(variant=v, noise=0.1, seed=s))
            for v, s in zip(variants, seeds, strict=True)
        ]
        for x, y in _switching(concepts, starts, width, random.Random(mix_seed)):
            yield {"x1": x[0], "x2": x[1], "x3": x[2]}, bool(y)

    return source


def _balanced_agrawal(function: int, seed: int, coin_seed: int) -> Iterator[Pair]:
    # river's balance_classes rejects samples cheaply (before building the feature dict) but makes
    # the labels strictly alternate 1, 0, 1, ...: a pattern a model of the label sequence could
    # exploit. A seeded coin picks the class of each event instead; the other class waits in a
    # queue (its length is a random walk: ~sqrt(n) pairs after n events).
    from river.datasets import synth

    pairs = iter(synth.Agrawal(classification_function=function, seed=seed, balance_classes=True))
    coin = random.Random(coin_seed)
    waiting: dict[int, deque[dict[str, float]]] = {0: deque(), 1: deque()}
    while True:
        wanted = int(coin.random() < 0.5)
        while not waiting[wanted]:
            x, y = next(pairs)
            waiting[int(y)].append({name: float(value) for name, value in x.items()})
        yield waiting[wanted].popleft(), wanted


def _agrawal(functions: Sequence[int], starts: Sequence[int], width: int = 0) -> Source:
    def source(seed: int) -> Iterator[Pair]:
        seeds = _sub_seeds(seed, 2 * len(functions))
        concepts = [
            _balanced_agrawal(f, seeds[2 * k], seeds[2 * k + 1]) for k, f in enumerate(functions)
        ]
        return _switching(concepts, starts, width, random.Random(seed))

    return source


_STAGGER_NAMES = {
    "size": ("small", "medium", "large"),
    "color": ("red", "green", "blue"),
    "shape": ("square", "circle", "triangle"),
}


def _stagger(functions: Sequence[int], starts: Sequence[int]) -> Source:
    # Categorical features as strings, the way a user's events carry them (one-hot encoded).
    def source(seed: int) -> Iterator[Pair]:
        from river.datasets import synth

        seeds = _sub_seeds(seed, len(functions))
        concepts = [
            iter(synth.STAGGER(classification_function=f, seed=s))
            for f, s in zip(functions, seeds, strict=True)
        ]
        for x, y in _switching(concepts, starts, 0, random.Random(seed)):
            yield {k: _STAGGER_NAMES[k][int(v)] for k, v in x.items()}, bool(y)

    return source


def _rbf(starts: Sequence[int]) -> Source:
    # Each concept is a new set of centroids (river's seed_model): inputs and labels both move.
    def source(seed: int) -> Iterator[Pair]:
        from river.datasets import synth

        seeds = _sub_seeds(seed, 2 * (len(starts) + 1))
        concepts = [
            iter(
                synth.RandomRBF(
                    seed_model=seeds[2 * k],
                    seed_sample=seeds[2 * k + 1],
                    n_classes=2,
                    n_features=8,
                    n_centroids=20,
                )
            )
            for k in range(len(starts) + 1)
        ]
        for x, y in _switching(concepts, starts, 0, random.Random(seed)):
            yield {f"x{i + 1}": float(v) for i, v in x.items()}, bool(y)

    return source


def _hyperplane(seed: int) -> Iterator[Pair]:
    from river.datasets import synth

    (own_seed,) = _sub_seeds(seed, 1)
    stream = synth.Hyperplane(seed=own_seed, n_features=8, mag_change=0.0, noise_percentage=0.05)
    for x, y in stream:
        yield {f"x{i + 1}": float(v) for i, v in x.items()}, bool(y)


def _friedman(positions: tuple[int, int]) -> Source:
    def source(seed: int) -> Iterator[Pair]:
        from river.datasets import synth

        (own_seed,) = _sub_seeds(seed, 1)
        for x, y in synth.FriedmanDrift(drift_type="gra", position=positions, seed=own_seed):
            yield {f"x{i + 1}": float(v) for i, v in x.items()}, float(y)

    return source


# SEA thresholds per variant: 0 -> 8, 1 -> 9, 2 -> 7, 3 -> 9.5 (label: x1 + x2 > threshold).
# 9 -> 7 -> 9.5 -> 7 moves the boundary by at least 2 each time, so a fitted linear model
# mislabels 16-21% of the input space right after every drift (8 -> 9.5 would be only 13%).
_SEA_VARIANTS = (1, 2, 3, 2)
_DRIFTS_20K = (5000, 10000, 15000)
_GRADUAL_WIDTH = 2000

DATASETS: dict[str, Dataset] = {
    ds.name: ds
    for ds in (
        Dataset(
            name="sea-abrupt",
            description="SEA, 3 features, 10% label noise; threshold 9 -> 7 -> 9.5 -> 7 at "
            "5000/10000/15000 (abrupt)",
            task="classification",
            size=20000,
            true_drifts=_DRIFTS_20K,
            drift_kind="abrupt",
            source=_sea(_SEA_VARIANTS, _DRIFTS_20K),
        ),
        Dataset(
            name="sea-gradual",
            description="SEA as sea-abrupt, but each change is a sigmoid mixture over 2000 events "
            "starting at 5000/10000/15000",
            task="classification",
            size=20000,
            true_drifts=_DRIFTS_20K,
            drift_kind="gradual",
            drift_width=_GRADUAL_WIDTH,
            source=_sea(_SEA_VARIANTS, _DRIFTS_20K, _GRADUAL_WIDTH),
        ),
        Dataset(
            name="sea-stationary",
            description="SEA, threshold 8 throughout, 10% label noise: no drift (false alarms)",
            task="classification",
            size=20000,
            true_drifts=(),
            drift_kind="none",
            source=_sea((0,), ()),
        ),
        Dataset(
            name="agrawal-abrupt",
            description="Agrawal loan approval, 9 features, balanced classes; function "
            "6 -> 7 -> 8 -> 7 at 5000/10000/15000 (abrupt)",
            task="classification",
            size=20000,
            true_drifts=_DRIFTS_20K,
            drift_kind="abrupt",
            source=_agrawal((6, 7, 8, 7), _DRIFTS_20K),
        ),
        Dataset(
            name="agrawal-gradual",
            description="Agrawal as agrawal-abrupt, but each change is a sigmoid mixture over "
            "2000 events starting at 5000/10000/15000",
            task="classification",
            size=20000,
            true_drifts=_DRIFTS_20K,
            drift_kind="gradual",
            drift_width=_GRADUAL_WIDTH,
            source=_agrawal((6, 7, 8, 7), _DRIFTS_20K, _GRADUAL_WIDTH),
        ),
        Dataset(
            name="stagger-abrupt",
            description="STAGGER, 3 categorical features (strings); rule 0 -> 2 -> 0 at "
            "15000/30000 (abrupt)",
            task="classification",
            size=45000,
            true_drifts=(15000, 30000),
            drift_kind="abrupt",
            source=_stagger((0, 2, 0), (15000, 30000)),
        ),
        Dataset(
            name="rbf-abrupt",
            description="Random RBF, 8 features, 20 centroids; all-new centroids at 25000: "
            "inputs and concept change at once (abrupt)",
            task="classification",
            size=50000,
            true_drifts=(25000,),
            drift_kind="abrupt",
            source=_rbf((25000,)),
        ),
        Dataset(
            name="hyperplane-stationary",
            description="Rotating hyperplane with no rotation, 8 features, 5% label noise: "
            "50,000 events of no drift (false alarms on every signal)",
            task="classification",
            size=50000,
            true_drifts=(),
            drift_kind="none",
            source=_hyperplane,
        ),
        Dataset(
            name="friedman-drift",
            description="Friedman regression, 10 features; relevant features swap at 5000, the "
            "original concept returns at 10000 (abrupt, recurring)",
            task="regression",
            size=15000,
            true_drifts=(5000, 10000),
            drift_kind="abrupt",
            source=_friedman((5000, 10000)),
        ),
    )
}


def get_dataset(name: str) -> Dataset:
    """The built-in dataset called ``name``.

    >>> get_dataset("sea-stationary").true_drifts
    ()
    >>> get_dataset("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown dataset 'nope'; valid names: agrawal-abrupt, agrawal-gradual, ...
    """
    try:
        return DATASETS[name]
    except KeyError:
        valid = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; valid names: {valid}") from None
