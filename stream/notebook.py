"""driftline from Python: an engine fed dicts or a DataFrame, and the backtest the CLI runs.

Exposed as ``driftline.Engine``, ``driftline.backtest`` and ``driftline.load_config``. Settings
come as the CLI takes them (defaults, a TOML file or a mapping of the same shape, then
``DRIFTLINE_*`` overrides), and a model as a registry name or a River model object.

>>> from river import linear_model, preprocessing
>>> engine = Engine(model=preprocessing.StandardScaler() | linear_model.LogisticRegression())
>>> rows = [{"temp": t * 7 % 30, "rain": t * 7 % 30 < 10} for t in range(600)]
>>> fed = engine.feed(rows, target="rain")
>>> fed.predictions[0]["source"], fed.predictions[-1]["source"]  # a fallback until it has learned
('fallback', 'model')
>>> s = engine.summary()
>>> s["labelled"], s["metric_name"], s["metric"] > 0.8
(600, 'accuracy', True)
>>> s["models"][0]["name"], s["models"][0]["role"]
('Pipeline#...', 'champion')
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driftline.learners.config import LearningConfig
from driftline.learners.engine import Engine as CoreEngine
from driftline.learners.outputs import Outputs
from driftline.learners.prototypes import spec_of
from driftline.offline.backtest import run_backtest
from driftline.offline.records import record_events, records_source
from driftline.offline.sources import Source, open_source
from driftline.settings import check_names, load_settings

Config = str | Path | Mapping[str, Any] | LearningConfig | None


def load_config(config: Config = None, *, model: Any = None) -> LearningConfig:
    """The settings a command would run with: ``config`` is a TOML file, a mapping shaped like
    one (``{"policy": {"action": "reset"}}``), a config object, or ``None`` (the defaults, or
    ``$DRIFTLINE_CONFIG``). ``model`` (a registry name, ``"package.module:factory"`` or a River
    model object) replaces ``[model] name`` and ``params``."""
    if isinstance(config, LearningConfig):
        settings = config
    elif isinstance(config, Mapping):
        settings = load_settings(data=config)
    else:
        settings = load_settings(config)
    if model is None:
        return settings
    name, params = (model, {}) if isinstance(model, str) else spec_of(model)
    chosen = dataclasses.replace(
        settings, model=dataclasses.replace(settings.model, name=name, params=params)
    )
    check_names(chosen)  # as when settings load: a model that cannot be built fails now
    return chosen


class Engine:
    """Predict, score, learn and watch for drift, one event at a time (the live worker's engine).

    Everything it produced stays in :attr:`predictions`, :attr:`alerts` and
    :attr:`dead_letters` (lists of the records the topics would carry; ``pandas.DataFrame(...)``
    of one is a table); :meth:`feed` returns what one call produced.
    """

    def __init__(
        self, model: Any = None, config: Config = None, *, snapshot_key: bytes | None = None
    ) -> None:
        self.config = load_config(config, model=model)
        #: The engine itself (:class:`driftline.learners.engine.Engine`): snapshots, restore.
        self.core = CoreEngine(self.config, partition=0, snapshot_key=snapshot_key)
        self.predictions: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []

    def feed(
        self,
        data: Any,
        *,
        target: str | None = None,
        id_column: str | None = None,
        time_column: str | None = None,
        key_column: str | None = None,
        timezone: str | None = None,
    ) -> Outputs:
        """Feed events: a DataFrame, a list of dicts (flat, with the label in column ``target``,
        or in the event contract ``{"id", "x", "y"}``), or one such dict. Each is predicted,
        then learned from its label when it has one. Ids count on from earlier calls."""
        rows = [data] if isinstance(data, Mapping) else data
        source = records_source(
            rows,
            target=target,
            id_column=id_column,
            time_column=time_column,
            key_column=key_column,
            timezone=timezone,
            task=self.config.engine.task,
            first_id=self.core.counters["events"],  # row numbers go on from the last call
        )
        for event in source.items:
            self.core.process(event)
        out = self.core.outputs.drain()
        self.predictions += out.predictions
        self.alerts += out.alerts
        self.dead_letters += out.dead_letters
        return out

    def label(self, event_id: Any, y: Any) -> Outputs:
        """A label that comes late: ``y`` for the event ``event_id`` fed earlier without one."""
        self.core.process_label({"id": event_id, "y": y})
        out = self.core.outputs.drain()
        self.alerts += out.alerts
        self.dead_letters += out.dead_letters
        return out

    def summary(self) -> dict[str, Any]:
        """Counts, the running prequential metric, the models and the alerts so far."""
        core = self.core
        slot = next(iter(core.slots.values()), None)
        labelled = core.counters["labelled"]
        kinds = Counter(alert["kind"] for alert in self.alerts)
        return {
            **{name: core.counters[name] for name in ("events", "valid", "invalid")},
            "labelled": labelled,
            "learned": core.counters["learned"],
            "task": core.task,
            "metric_name": getattr(core, "metric_name", None),
            # River's metrics read 0.0 before any update: None until something was scored.
            "metric": core.metric.get() if labelled and core.metric is not None else None,
            "model_version": slot.version if slot else 0,
            "models": slot.describe_models() if slot else [],
            "incidents": core.counters["incidents"],
            "alerts_by_kind": dict(sorted(kinds.items())),
            "dead_letter_reasons": dict(core.dead_letter_reasons),
        }


def backtest(
    data: Any = None,
    *,
    dataset: str | None = None,
    file: str | Path | None = None,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    timezone: str | None = None,
    delimiter: str | None = None,
    config: Config = None,
    model: Any = None,
    label_delay: int = 0,
    max_delay: int = 2500,
    true_drifts: list[int] | None = None,
    limit: int | None = None,
    seed: int = 42,
    out: str | Path | None = None,
    snapshot_key: bytes | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``driftline backtest`` from Python: the same engine, label order and scoring, and the same
    summary (``summary.json``'s content). Name one source: ``data`` (a DataFrame or records),
    ``dataset`` (a built-in stream) or ``file`` (JSONL or CSV); ``out`` writes the files the
    CLI's ``--out`` writes, report.png included."""
    settings = load_config(config, model=model)
    if sum(source is not None for source in (data, dataset, file)) != 1:
        raise ValueError("name exactly one source: data, dataset= or file=")
    source: Source
    if data is not None:
        source = records_source(
            data,
            target=target,
            id_column=id_column,
            time_column=time_column,
            key_column=key_column,
            timezone=timezone,
            task=settings.engine.task,
            limit=limit,
        )
    else:
        source = open_source(
            dataset=dataset,
            file=None if file is None else str(file),
            delimiter=delimiter,
            task=settings.engine.task if file is not None else None,
            unique_ids=label_delay > 0,  # late labels are joined by id, as the CLI requires
            limit=limit,
            seed=seed,
            target=target,
            id_column=id_column,
            time_column=time_column,
            key_column=key_column,
            timezone=timezone,
        )
    if true_drifts is not None:
        source.true_drifts = list(true_drifts)
    return run_backtest(
        settings,
        source,
        out_dir=out,
        label_delay=label_delay,
        max_delay=max_delay,
        snapshot_key=snapshot_key,
        show_progress=progress,
    )


__all__ = ["Engine", "backtest", "load_config", "record_events"]
