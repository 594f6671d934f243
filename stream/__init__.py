"""driftline: streaming online learning and drift detection on Kafka, and backtests through the
same engine.

In a notebook::

    import driftline
    summary = driftline.backtest(dataset="sea-abrupt")          # what `driftline backtest` prints
    engine = driftline.Engine(model=river_model)                 # feed it dicts or a DataFrame

The names load on first use (:mod:`driftline.notebook`), so that the ``driftline`` command and the
live worker do not import the notebook API and what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.notebook import Engine, backtest, load_config

__all__ = ["Engine", "__version__", "backtest", "load_config"]


def __getattr__(name: str) -> Any:
    if name in ("Engine", "backtest", "load_config"):
        return getattr(importlib.import_module("driftline.notebook"), name)
    if name == "__version__":
        from importlib.metadata import version

        return version("driftline")
    raise AttributeError(f"module 'driftline' has no attribute {name!r}")
