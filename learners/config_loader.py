"""Frozen dataclasses from plain mappings (TOML, environment overrides) and back: unknown keys and
wrong types fail with a :class:`~driftline.detectors.config_error.ConfigError` that names the dotted key.
The sections themselves are in :mod:`driftline.learners.config` (and :mod:`driftline.settings`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

from driftline.detectors.config_error import ConfigError

T = TypeVar("T")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin is dict or tp is dict:
        return "a table"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # type: ignore[arg-type]
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table, got {value!r}")
        return from_mapping(tp, value, key)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not {_describe(tp)}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        return tuple(_coerce(v, typing.get_args(tp)[0], f"{key}[]") for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table, got {value!r}")
        return dict(value)
    if origin in (types.UnionType, typing.Union):
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # DRIFTLINE_SERVICE__APP_ID=2024 reads as a number
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: dict[str, Any], prefix: str | None = None) -> T:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys and wrong types fail."""
    prefix = prefix if prefix is not None else getattr(cls, "section", cls.__name__)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            raise ConfigError(f"{key}: unknown setting; valid keys are {', '.join(fields)}")
        kwargs[name] = _coerce(_over_default(fields[name], value), hints[name], key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}: {exc}") from None


def _over_default(field: dataclasses.Field[Any], value: Any) -> Any:
    """A table given for a nested section overrides that section's *own* defaults: setting
    ``detectors.error.kind`` keeps the error monitor's ``min_effect``, not the class-wide one."""
    factory = field.default_factory
    if not isinstance(value, dict) or factory is dataclasses.MISSING:
        return value
    default = factory()
    if not dataclasses.is_dataclass(default):
        return value
    return {**to_mapping(default), **value}


def to_mapping(obj: Any) -> dict[str, Any]:
    """The inverse of :func:`from_mapping` (tuples become lists): for summaries and lineage."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}
