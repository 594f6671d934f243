"""The model registry: named River models, a ``package.module:factory`` hook, task inference.

A registry name maps to a classifier and/or a regressor, so ``hoeffding_tree`` means the right
tree for the task. Parameters are checked against the River class before anything runs.

>>> build_model("hoeffding_tree", {"grace_period": 50}, "classification", binary=True)
HoeffdingTreeClassifier (...)
>>> build_model("linear", {"l3": 1}, "regression", binary=False)
Traceback (most recent call last):
...
driftline.detectors.config_error.ConfigError: model.params: 'linear' has no parameter l3; valid: clip_gradient, initializer, intercept_init, intercept_lr, l1, l2, loss, lr, optimizer
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from driftline.learners.config import ConfigError

Factory = Callable[..., Any]


class _RiverClass:
    """A River class named ``"module:Class"``, imported when a model is first built: the
    registry (``model_names()``, ``driftline --help``) must not cost River's import (~1 s).

    >>> _RiverClass("river.tree:HoeffdingTreeClassifier").accepts >= {"grace_period", "delta"}
    True
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def target(self) -> Any:
        module, _, name = self.spec.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def accepts(self) -> set[str] | None:
        """The parameter names the class takes (``None``: any, it has ``**kwargs``)."""
        return _params_accepted(self.target())

    def __call__(self, **params: Any) -> Any:
        return self.target()(**params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class _Linear(_RiverClass):
    """A River linear model behind a ``StandardScaler`` (linear models need scaled inputs; the
    scaler learns online with the model); ``lr`` sets plain SGD's learning rate."""

    def __init__(self, spec: str, multiclass_wrap: bool = False) -> None:
        super().__init__(spec)
        self.multiclass_wrap = multiclass_wrap

    @property
    def accepts(self) -> set[str] | None:
        return {"lr", *inspect.signature(self.target()).parameters}

    def __call__(self, lr: float | None = None, **params: Any) -> Any:
        from river import multiclass, optim, preprocessing

        if lr is not None:
            params["optimizer"] = optim.SGD(lr)
        model: Any = self.target()(**params)
        if self.multiclass_wrap:
            model = multiclass.OneVsRestClassifier(model)
        return preprocessing.StandardScaler() | model


@dataclass(frozen=True)
class ModelEntry:
    description: str
    classifier: Factory | None = None
    multiclass_classifier: Factory | None = None
    regressor: Factory | None = None


REGISTRY: dict[str, ModelEntry] = {
    "linear": ModelEntry(
        "logistic regression (classification) / linear regression, behind a StandardScaler",
        classifier=_Linear("river.linear_model:LogisticRegression"),
        multiclass_classifier=_Linear(
            "river.linear_model:LogisticRegression", multiclass_wrap=True
        ),
        regressor=_Linear("river.linear_model:LinearRegression"),
    ),
    "hoeffding_tree": ModelEntry(
        "Hoeffding tree (VFDT)",
        classifier=_RiverClass("river.tree:HoeffdingTreeClassifier"),
        regressor=_RiverClass("river.tree:HoeffdingTreeRegressor"),
    ),
    "hoeffding_adaptive_tree": ModelEntry(
        "Hoeffding adaptive tree (replaces drifting branches itself)",
        classifier=_RiverClass("river.tree:HoeffdingAdaptiveTreeClassifier"),
        regressor=_RiverClass("river.tree:HoeffdingAdaptiveTreeRegressor"),
    ),
    "adaptive_random_forest": ModelEntry(
        "adaptive random forest (ARF; heavy: ~2k events/s, snapshots of several MiB)",
        classifier=_RiverClass("river.forest:ARFClassifier"),
        regressor=_RiverClass("river.forest:ARFRegressor"),
    ),
    "naive_bayes": ModelEntry(
        "Gaussian naive Bayes", classifier=_RiverClass("river.naive_bayes:GaussianNB")
    ),
}
ALIASES = {"logistic_regression": "linear", "linear_regression": "linear"}


def model_names() -> list[str]:
    return [*REGISTRY, *ALIASES, "package.module:factory"]


def _params_accepted(factory: Factory) -> set[str] | None:
    accepts = getattr(factory, "accepts", None)
    if accepts is not None:
        return set(accepts)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params}


def _call(name: str, factory: Factory, params: dict[str, Any]) -> Any:
    accepted = _params_accepted(factory)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ConfigError(
                f"model.params: {name!r} has no parameter {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(accepted))}"
            )
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.params: {name!r} rejected its parameters: {exc}") from None


def load_factory(spec: str) -> Factory:
    """Import ``package.module:factory`` (no ``eval``: an import and an attribute look-up)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"model.name: {spec!r} is not 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.name: cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"model.name: {module_name!r} has no callable {attr!r}")
    return factory


def check_model_name(name: str) -> None:
    """Fail early on a name that cannot be built (called when settings load)."""
    if name == "auto" or ":" in name:
        if ":" in name:
            load_factory(name)
        return
    if ALIASES.get(name, name) not in REGISTRY:
        raise ConfigError(f"model.name: unknown model {name!r}; valid: {', '.join(model_names())}")


def build_model(name: str, params: dict[str, Any], task: str, *, binary: bool) -> Any:
    """A fresh model for ``task``; ``binary`` picks a binary classifier for boolean labels."""
    if ":" in name:
        model = _call(name, load_factory(name), params)
        for method in ("learn_one", "predict_one"):
            if not callable(getattr(model, method, None)):
                raise ConfigError(f"model.name: {name!r} returned an object without {method}()")
        return model
    check_model_name(name)
    entry = REGISTRY["linear" if name == "auto" else ALIASES.get(name, name)]
    if task == "regression":
        factory = entry.regressor
    else:
        factory = entry.classifier if binary else entry.multiclass_classifier or entry.classifier
    if factory is None:
        raise ConfigError(f"model.name: {name!r} has no {task} variant")
    return _call(name, factory, params)


def infer_task(label: Any) -> tuple[str, str]:
    """The task a label implies, and why: booleans, strings and integers mean classification.

    >>> infer_task(True)
    ('classification', 'boolean labels')
    >>> infer_task(2.5)
    ('regression', 'numeric labels')
    """
    if isinstance(label, bool):
        return "classification", "boolean labels"
    if isinstance(label, str):
        return "classification", "string labels"
    if isinstance(label, int):
        return "classification", "integer labels"
    return "regression", "numeric labels"
