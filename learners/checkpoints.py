"""The engine's snapshots: when one is due, the lineage header it carries, the signed state, and
the checks a snapshot passes before an engine is rebuilt from it (:meth:`Engine.restore
<driftline.learners.engine.Engine.restore>`, :meth:`~driftline.learners.engine.Engine.warm_start`).

A mixin of :class:`driftline.learners.engine.Engine` (which sets every attribute below).
"""

from __future__ import annotations

import math
import pickle
import time
from collections import OrderedDict
from typing import Any

import river

from driftline.learners import pickling
from driftline.learners.config import LearningConfig
from driftline.learners.outputs import Outputs
from driftline.learners.slot import ModelSlot
from driftline.learners.snapshot import SnapshotError, load_snapshot, sign_pickled

DRIFTLINE_VERSION = "0.1.0"
#: The layout of the engine state in a snapshot. 2: incidents, challengers and confirmation
#: windows (the drift loop); a snapshot of another layout is refused, not half-restored.
SNAPSHOT_FORMAT = 2


class Checkpoints:
    """Snapshots of :class:`driftline.learners.engine.Engine`."""

    config: LearningConfig
    partition: int | None
    owner: str | None
    task: str | None
    slots: OrderedDict[Any, ModelSlot]
    outputs: Outputs
    counters: dict[str, int]
    metric: Any
    slices: Any  # SliceMonitors | None
    index: int
    watermark: int
    label_watermark: int
    clock_ms: float
    _key: bytes | None
    _snapshot_at_index: int
    _snapshot_at_ms: float

    def _maybe_snapshot(self) -> None:
        every = self.config.snapshot.every_events
        every_ms = self.config.snapshot.every_seconds * 1000
        if every_ms and not self._snapshot_at_ms:
            self._snapshot_at_ms = self.clock_ms  # the clock starts at the first event
        if (every and self.index - self._snapshot_at_index >= every) or (
            every_ms and self.clock_ms - self._snapshot_at_ms >= every_ms
        ):
            self.snapshot()

    def header(self) -> dict[str, Any]:
        """Lineage and counters: what a snapshot says about itself (readable without the key)."""
        slot = self.slots.get(None) or next(iter(self.slots.values()), None)
        metric = self.metric.get() if self.metric is not None else None
        return {
            "format": SNAPSHOT_FORMAT,
            "model": self.config.model.name,
            "model_params": self.config.model.params,
            "task": self.task,
            "partition": self.partition,
            "owner": self.owner,
            "model_version": slot.version if slot else 0,
            "model_versions": {str(k): s.version for k, s in self.slots.items()},
            "events": self.index,
            "labelled": self.counters["labelled"],
            "learned": self.counters["learned"],
            "watermark": self.watermark,
            "label_watermark": self.label_watermark,
            # Strictly increasing along a lineage (a restored engine continues it): recovery
            # restores the highest and refuses one below what its group restored or published.
            "sequence": self.counters["snapshots"],
            "history": self.config.snapshot.history,
            "metric_name": getattr(self, "metric_name", None),
            "metric": None if metric is None or math.isnan(metric) else metric,
            # Per-slice counts and metrics ([slices]; bounded by slices.max_values): what the
            # dashboard shows of them, read from the newest snapshot of each partition.
            "slices": self.slices.describe() if self.slices is not None else {},
            "river_version": river.__version__,
            "driftline_version": DRIFTLINE_VERSION,
            "created_at": time.time(),
        }

    def snapshot(self) -> dict[str, Any] | None:
        """The scheduled snapshot: the current models become the rollback targets (when no alarm
        is active), the schedule restarts, and a signed checkpoint is emitted if there is a key."""
        self._snapshot_at_index = self.index
        self._snapshot_at_ms = self.clock_ms
        for slot in self.slots.values():
            slot.mark_good()
        if self._key is not None:
            self.counters["snapshots"] += 1  # before the state is taken: a restore counts it
        try:
            pickled = pickling.dumps(self._state())
        except (pickle.PicklingError, TypeError, AttributeError):
            if self._key is not None:
                raise  # a snapshot was asked for: the model that will not pickle is named
            return None  # no snapshot; the state goes on as it is (only slower, see below)
        record = self._emit(pickled, self._key) if self._key is not None else None
        self._renew_state(pickled)
        return record

    def _renew_state(self, pickled: bytes) -> None:
        """Take an equal copy of the state (just ``pickled``) in place of the state itself:
        pickling left its objects slower to read for the rest of the run
        (:mod:`driftline.learners.pickling`). What comes next is the same as without it, as
        after a restore."""
        state = pickle.loads(pickled)  # (a failure here would be ours: not hidden)
        for name, value in state.items():
            setattr(self, name, value)
        for slot in self.slots.values():
            slot.config = self.config  # as a restore does: the one config, not a copy

    def checkpoint(self) -> dict[str, Any] | None:
        """A signed snapshot of the state as it is, with no side effect on what comes next: for
        shutdown, revocation or the end of a backtest, so that restoring from it and going on
        gives exactly the run that would have happened without it."""
        if self._key is None:
            return None
        self.counters["snapshots"] += 1  # before the state is taken: a restore counts this one
        return self._emit(pickling.dumps(self._state()), self._key)

    def _emit(self, pickled: bytes, key: bytes) -> dict[str, Any]:
        """Sign the ``pickled`` state with its header; the record goes to the outputs."""
        header = self.header()
        blob = sign_pickled(pickled, header, key)
        record = {"partition": self.partition, "header": header, "blob": blob}
        self.outputs.snapshots.append(record)
        return record

    #: Not part of a snapshot: I/O, the key, the config (the current one applies), who this
    #: engine is (a snapshot never decides which partition or owner it restores into), and the
    #: backtest's scorecard (every loss of the run: a report, not state).
    _NOT_STATE = frozenset(
        {"outputs", "_key", "config", "partition", "source", "owner", "scorecard"}
    )

    def _state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._NOT_STATE}


def load_checked(
    blob: bytes, key: bytes | None, config: LearningConfig, expected: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    def check(header: dict[str, Any]) -> None:
        if header.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(
                f"refused: the snapshot has state format {header.get('format')!r}, this "
                f"driftline reads format {SNAPSHOT_FORMAT} (it was written by another version: "
                "start fresh, or replay the history)"
            )
        for name in ("partition", "owner"):
            if name in expected and header.get(name) != expected[name]:
                raise SnapshotError(
                    f"refused: the snapshot is for {name} {header.get(name)!r}, "
                    f"not {expected[name]!r}"
                )
        if header.get("model") != config.model.name:
            raise SnapshotError(
                f"refused: the snapshot holds model {header.get('model')!r}, the config says "
                f"{config.model.name!r} (start fresh, or restore with the config it was made with)"
            )

    return load_snapshot(blob, key, check)
