"""Build River drift detectors by name, with parameters checked against the detector's signature.

>>> det = build_detector("adwin", {"delta": 0.01})
>>> type(det).__name__, det.delta
('ADWIN', 0.01)
>>> build_detector("adwni", {})
Traceback (most recent call last):
...
driftline.detectors.config_error.ConfigError: detector.kind: unknown detector 'adwni'; valid: adwin, page_hinkley, none
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from river import base, drift

from driftline.detectors.config_error import ConfigError

DETECTORS: dict[str, Callable[..., base.DriftDetector]] = {
    "adwin": drift.ADWIN,
    "page_hinkley": drift.PageHinkley,
}

#: A warning detector is the same kind, more sensitive (ARF's convention: a larger delta warns earlier, a smaller one
#: drifts). These are used when ``warning_params`` is empty.
WARNING_DEFAULTS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 0.05},
    "page_hinkley": {"threshold": 25.0},
}


def detector_names() -> list[str]:
    return [*DETECTORS, "none"]


def build_detector(
    kind: str, params: dict[str, Any], key: str = "detector", params_key: str = ""
) -> base.DriftDetector:
    """A fresh River detector of ``kind`` (``adwin`` or ``page_hinkley``); errors name ``key``
    (and ``params_key``, default ``<key>.params``, for a parameter error)."""
    params_key = params_key or f"{key}.params"
    factory = DETECTORS.get(kind)
    if factory is None:
        raise ConfigError(
            f"{key}.kind: unknown detector {kind!r}; valid: {', '.join(detector_names())}"
        )
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"{params_key}: {kind!r} has no parameter {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(accepted))}"
        )
    try:
        detector = factory(**params)
        # Page-Hinkley does not check its arguments: a wrong type would only fail at the first
        # event, mid-stream. One update on a throwaway copy makes it fail now.
        detector.clone().update(0.0)
        return detector
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{params_key}: {kind!r} rejected them: {exc}") from None


def warning_params(kind: str, params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the warning detector: the drift parameters, made more sensitive."""
    return {**params, **WARNING_DEFAULTS.get(kind, {}), **overrides}
