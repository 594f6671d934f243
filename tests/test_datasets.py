"""Built-in datasets: the event contract, determinism, and drifts that really are drifts."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import orjson
import pytest
from river import linear_model, preprocessing

from driftline.learners.engine import encode_features
from driftline.learners.events import decode_event, validate_event
from driftline.offline.datasets import (
    DATASETS,
    START_TS_MS,
    Dataset,
    get_dataset,
    transition_probability,
)

NAMES = sorted(DATASETS)
DRIFTING = [name for name in NAMES if DATASETS[name].true_drifts]
SEED = 42
#: Events on each side of a drift used to train and to score a frozen model.
TRAIN, HOLDOUT = 3000, 1000


@functools.cache
def _events(name: str, seed: int = SEED) -> tuple[dict[str, Any], ...]:
    # Generated once per module run: Agrawal's class balancing makes a full pass take seconds.
    return tuple(get_dataset(name).events(seed=seed))


def test_required_datasets_are_built_in() -> None:
    assert {"sea-abrupt", "agrawal-abrupt", "sea-gradual", "sea-stationary", "friedman-drift"} <= (
        DATASETS.keys()
    )
    assert all(name == ds.name for name, ds in DATASETS.items())


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_consistent(name: str) -> None:
    ds = get_dataset(name)
    assert ds.task in ("classification", "regression")
    assert ds.description and "\n" not in ds.description
    assert list(ds.true_drifts) == sorted(set(ds.true_drifts))
    assert all(0 < d < ds.size for d in ds.true_drifts)
    assert (ds.drift_kind == "none") == (not ds.true_drifts)
    assert (ds.drift_width > 0) == (ds.drift_kind == "gradual")


@pytest.mark.parametrize("name", NAMES)
def test_events_are_deterministic_for_a_seed(name: str) -> None:
    ds = get_dataset(name)
    first = list(ds.events(limit=300, seed=7))
    assert first == list(ds.events(limit=300, seed=7))
    assert first != list(ds.events(limit=300, seed=8))
    assert list(ds.events(limit=300)) == list(ds.events(limit=300, seed=42))


@pytest.mark.parametrize("name", NAMES)
def test_events_follow_the_event_contract(name: str) -> None:
    ds = get_dataset(name)
    events = _events(name)
    assert len(events) == ds.size
    assert [e["id"] for e in events] == list(range(ds.size))  # unique, in order
    label_types = {bool, int, str} if ds.task == "classification" else {float}
    for i, event in enumerate(events[:2000]):
        assert set(event) == {"id", "ts", "x", "y"}
        assert event["ts"] == START_TS_MS + 1000 * i
        assert 0 < len(event["x"]) <= 10
        # No numpy scalars, no ints; STAGGER's categories are strings, as a user's events have them.
        feature_types = {str} if name.startswith("stagger") else {float}
        assert {type(v) for v in event["x"].values()} <= feature_types
        assert type(event["y"]) in label_types
        normalised = validate_event(event)
        assert (normalised["x"], normalised["y"]) == (event["x"], event["y"])
        assert decode_event(orjson.dumps(event))["x"] == event["x"]
    if ds.task == "classification":
        assert len({e["y"] for e in events}) == 2


@pytest.mark.parametrize("name", NAMES)
def test_limit_is_respected(name: str) -> None:
    ds = get_dataset(name)
    assert len(list(ds.events(limit=17))) == 17
    assert list(ds.events(limit=0)) == []
    assert list(ds.events(limit=50)) == list(ds.events(limit=200))[:50]
    with pytest.raises(ValueError, match="limit"):
        ds.events(limit=-1)


def test_events_are_generated_lazily() -> None:
    # Would never return if the billion events were built up front.
    head = list(itertools.islice(get_dataset("sea-abrupt").events(limit=10**9), 5))
    assert [e["id"] for e in head] == [0, 1, 2, 3, 4]


def test_a_limit_above_size_continues_in_the_last_concept() -> None:
    ds = get_dataset("friedman-drift")
    events = list(ds.events(limit=ds.size + 10))
    assert len(events) == ds.size + 10
    assert events[: ds.size] == list(_events("friedman-drift"))


def test_unknown_dataset_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'sea'") as info:
        get_dataset("sea")
    for name in NAMES:
        assert name in str(info.value)


def _fit(events: Any, task: str) -> Any:
    model = preprocessing.StandardScaler() | (
        linear_model.LogisticRegression()
        if task == "classification"
        else linear_model.LinearRegression()
    )
    for e in events:
        model.learn_one(encode_features(e["x"]), e["y"])
    return model


def _score(model: Any, events: Any, task: str) -> float:
    """Accuracy for classification, mean absolute error for regression."""
    if task == "classification":
        return sum(model.predict_one(encode_features(e["x"])) == e["y"] for e in events) / len(
            events
        )
    return sum(abs(model.predict_one(encode_features(e["x"])) - e["y"]) for e in events) / len(
        events
    )


def _before_and_after(ds: Dataset, drift: int) -> tuple[float, float]:
    """A model frozen after the segment before ``drift``: score on held-out data before the drift
    and on data once the transition is over."""
    events = _events(ds.name)
    start = drift - HOLDOUT - TRAIN
    model = _fit(events[start : drift - HOLDOUT], ds.task)
    before = _score(model, events[drift - HOLDOUT : drift], ds.task)
    settled = drift + ds.drift_width
    after = _score(model, events[settled : settled + HOLDOUT], ds.task)
    return before, after


@pytest.mark.parametrize(
    ("name", "drift"), [(name, d) for name in DRIFTING for d in DATASETS[name].true_drifts]
)
def test_concept_really_changes_at_each_true_drift(name: str, drift: int) -> None:
    ds = get_dataset(name)
    before, after = _before_and_after(ds, drift)
    if ds.task == "classification":
        # Measured with seed 42: SEA 0.88 -> 0.73-0.81, Agrawal 0.94-0.97 -> 0.58-0.64.
        assert after < before - 0.05, (before, after)
    else:
        # Measured with seed 42: Friedman MAE 2.1-2.3 -> 3.5-3.7.
        assert after > 1.3 * before, (before, after)


def test_the_same_check_finds_no_change_in_the_stationary_stream() -> None:
    # The counter-check of the test above: the method does not report a change where there is none.
    before, after = _before_and_after(get_dataset("sea-stationary"), 10000)
    assert abs(after - before) < 0.03, (before, after)


def test_gradual_drift_mixes_in_the_new_concept_progressively() -> None:
    ds = get_dataset("sea-gradual")
    start, width = ds.true_drifts[1], ds.drift_width  # threshold 7 -> 9.5
    events = _events(ds.name)

    def share_of_new_concept(lo: int, hi: int) -> float:
        # Only points between the thresholds tell the concepts apart; 10% of labels are noise.
        telling = [e for e in events[lo:hi] if 7 < e["x"]["x1"] + e["x"]["x2"] < 9.5]
        return sum(not e["y"] for e in telling) / len(telling)

    quarter = width // 4
    shares = [
        share_of_new_concept(start + k * quarter, start + (k + 1) * quarter) for k in range(4)
    ]
    assert share_of_new_concept(start - width, start) < 0.15
    assert shares[0] < 0.35 < 0.65 < shares[3], shares
    assert shares == sorted(shares), shares
    assert share_of_new_concept(start + width, start + 2 * width) > 0.85


def test_transition_probability_rises_from_zero_to_one_without_overflow() -> None:
    width = 2000
    probabilities = [transition_probability(k, width) for k in range(-10, width + 10)]
    assert probabilities[:11] == [0.0] * 11
    assert probabilities[-10:] == [1.0] * 10
    assert probabilities == sorted(probabilities)
    assert transition_probability(width // 2, width) == pytest.approx(0.5)
    assert transition_probability(10**18, 3) == 1.0
    assert transition_probability(-(10**18), 3) == 0.0
