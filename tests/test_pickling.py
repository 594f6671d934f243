"""The engine takes a fresh copy of its state after each periodic snapshot
(:mod:`driftline.learners.pickling`): it must really be taken, and change nothing that comes out."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from driftline.detectors.effect import Reference
from driftline.learners.config import LearningConfig, from_mapping
from driftline.learners.engine import Engine
from driftline.learners.pickling import dumps
from driftline.offline.datasets import get_dataset

KEY = bytes(range(32))


def _engine(every: int) -> Engine:
    config = from_mapping(
        LearningConfig, {"model": {"name": "linear"}, "snapshot": {"every_events": every}}
    )
    return Engine(config, partition=0, snapshot_key=KEY)


def _outputs(engine: Engine, events: list[dict[str, Any]]) -> dict[str, Any]:
    predictions, alerts = [], []
    for offset, event in enumerate(events):
        engine.process(event, offset)
        out = engine.outputs.drain()
        predictions += out.predictions
        alerts += out.alerts
    return {"predictions": predictions, "alerts": alerts, "counters": dict(engine.counters)}


def test_a_periodic_snapshot_leaves_the_engine_with_a_fresh_copy_of_its_state() -> None:
    # (A copy that failed would leave the objects the snapshot pickled: slower for good.)
    engine = _engine(every=300)
    events = list(get_dataset("sea-abrupt").events(limit=700))
    for offset, event in enumerate(events[:299]):
        engine.process(event, offset)
    before = (engine.guard_monitor, engine.slots[None].model, engine.encoder)
    engine.process(events[299], 299)  # the 300th event: the snapshot is due
    assert engine.counters["snapshots"] == 1
    after = (engine.guard_monitor, engine.slots[None].model, engine.encoder)
    assert all(old is not new for old, new in zip(before, after, strict=True))
    assert engine.slots[None].config is engine.config  # the one config, as after a restore


def test_the_fresh_copy_changes_nothing_that_comes_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three drifts, alerts, warnings and a challenger on the way; a snapshot every 500 events.
    events = list(get_dataset("sea-abrupt").events(limit=12_000))
    renewed = _outputs(_engine(every=500), events)
    monkeypatch.setattr(Engine, "_renew_state", lambda self, pickled: None)
    kept = _outputs(_engine(every=500), events)
    assert renewed["alerts"], "the stream should raise alerts for this test to mean anything"
    assert renewed == kept


def test_frozen_and_slotted_objects_are_copied_as_they_pickle() -> None:
    config = from_mapping(LearningConfig, {"model": {"name": "linear"}})
    reference = Reference()
    for value in (1.0, 2.0, 4.0):
        reference.add(value)
    copied_config, copied_reference = pickle.loads(dumps((config, reference)))
    assert copied_config == config
    assert (copied_reference.n, copied_reference.mean, copied_reference.m2) == (
        reference.n,
        reference.mean,
        reference.m2,
    )
