"""River model objects as model specs, for the notebook API (``driftline.Engine(model=...)``).

A model spec names a factory (``package.module:factory``) so that snapshots, challengers and resets
can build a fresh model at any time. An object made in a notebook has no import path: it is kept
here under a name, and every fresh model is a clone of it (River's ``clone()``: same parameters,
nothing learned). The name lives only as long as the process.

>>> from river.linear_model import LogisticRegression
>>> name, params = spec_of(LogisticRegression(l2=0.01))
>>> name, params
('driftline.learners.prototypes:clone_of', {'model': 'LogisticRegression#...'})
>>> clone_of(**params)
LogisticRegression (...l2=0.01...)
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

#: The factory every kept model is built through.
FACTORY = "driftline.learners.prototypes:clone_of"

_kept: dict[str, Any] = {}
_names: dict[int, str] = {}
_numbers = itertools.count(1)


def spec_of(model: Any) -> tuple[str, dict[str, Any]]:
    """``(model.name, model.params)`` that build clones of ``model``; the same object keeps its name."""
    for method in ("learn_one", "predict_one"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                f"model: expected a River model (with learn_one and predict_one), got "
                f"{type(model).__name__}"
            )
    name = _names.get(id(model))
    if name is None or _kept.get(name) is not model:
        name = f"{type(model).__name__}#{next(_numbers)}"
        _kept[name], _names[id(model)] = model, name
    return FACTORY, {"model": name}


def display_name(name: str, params: dict[str, Any]) -> str:
    """How a model spec is shown: a kept object by its own name (``Pipeline#2``)."""
    return str(params.get("model", name)) if name == FACTORY else name


def clone_of(model: str) -> Any:
    """A fresh copy of the kept model ``model`` (its parameters, nothing it may have learned)."""
    try:
        prototype = _kept[model]
    except KeyError:
        raise ValueError(
            f"no model object {model!r} in this process (a spec made by the notebook API lives "
            "only as long as its process): pass the River model again"
        ) from None
    clone = getattr(prototype, "clone", None)
    return clone() if callable(clone) else copy.deepcopy(prototype)
