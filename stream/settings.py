"""Settings: one TOML file plus ``DRIFTLINE_`` environment overrides, into one frozen object.

* ``--config PATH`` (or ``$DRIFTLINE_CONFIG``) names the TOML file; without one, defaults apply.
* ``DRIFTLINE_<SECTION>__<KEY>=value`` overrides a key (``__`` separates levels), e.g.
  ``DRIFTLINE_MODEL__NAME=hoeffding_tree``, ``DRIFTLINE_DETECTORS__ERROR__KIND=page_hinkley``.
  Values are read as TOML values (``10``, ``true``, ``[1, 2]``), else as plain text.
* ``DRIFTLINE_BOOTSTRAP`` is a shortcut for ``DRIFTLINE_KAFKA__BOOTSTRAP``.

Any unknown key, wrong type, unknown model or detector name or bad range fails at start:

>>> load_settings(environ={"DRIFTLINE_MODEL__NAME": "hoefding_tree"})
Traceback (most recent call last):
...
learners.config.ConfigError: model.name: unknown model 'hoefding_tree'; valid: linear, ...
>>> load_settings(environ={"DRIFTLINE_POLICY__ACTION": "reset"}).policy.action
'reset'
"""

from __future__ import annotations

import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.registry import build_detector, warning_params
from learners.config import ConfigError, LearningConfig, from_mapping
from learners.models import build_model, check_model_name

ENV_PREFIX = "DRIFTLINE_"
#: Environment variables that are not setting overrides.
RESERVED_ENV = {"CONFIG", "SNAPSHOT_KEY", "SNAPSHOT_KEY_FILE", "BOOTSTRAP"}


@dataclass(frozen=True)
class TopicsConfig:
    events: str = "events"
    labels: str = "labels"
    predictions: str = "predictions"
    alerts: str = "drift-alerts"
    snapshots: str = "model-snapshots"
    dead_letter: str = "dead-letter"


@dataclass(frozen=True)
class KafkaConfig:
    """Where the broker is and what the topics are called. ``client`` passes through to the
    Kafka clients unchanged (SASL/TLS: ``security_protocol``, ``sasl_mechanism``, ...)."""

    section: typing.ClassVar[str] = "kafka"
    bootstrap: str = "127.0.0.1:9092"
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    partitions: int = 1
    replication: int = 1
    client: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError("kafka.partitions: must be >= 1")
        if self.replication < 1:
            raise ConfigError("kafka.replication: must be >= 1")


@dataclass(frozen=True)
class ServiceConfig:
    """The live worker: Faust app id (= consumer group), web and metrics ports."""

    section: typing.ClassVar[str] = "service"
    app_id: str = "driftline"
    web_port: int = 6066
    metrics_port: int = 9464
    data_dir: str = ".driftline"


@dataclass(frozen=True)
class Settings(LearningConfig):
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_env(data: dict[str, Any], environ: typing.Mapping[str, str]) -> None:
    if environ.get(f"{ENV_PREFIX}BOOTSTRAP"):
        data.setdefault("kafka", {})["bootstrap"] = environ[f"{ENV_PREFIX}BOOTSTRAP"]
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest in RESERVED_ENV:
            continue
        path = [p.lower() for p in rest.split("__")]
        if len(path) < 2 or not all(path):
            raise ConfigError(
                f"{name}: not a setting override; use {ENV_PREFIX}<SECTION>__<KEY>, "
                f"e.g. {ENV_PREFIX}MODEL__NAME"
            )
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path[:-1])} is not a section")
            node = child
        node[path[-1]] = _env_value(text)


def _check_names(settings: Settings) -> None:
    model = settings.model
    check_model_name(model.name)
    for name in settings.policy.challengers:
        try:
            check_model_name(name)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("model.name", "policy.challengers", 1)) from None
    if ":" not in model.name:
        # Build once per variant the task allows, to check the parameters against the River
        # class before any event: with task "auto" the first label may pick any of them.
        task = settings.engine.task
        variants = [("classification", True), ("classification", False), ("regression", False)]
        for variant_task, binary in variants:
            if task in ("auto", variant_task):
                try:
                    build_model(model.name, model.params, variant_task, binary=binary)
                except ConfigError as exc:
                    if task == "auto":
                        raise ConfigError(
                            f"{exc} (with engine.task = 'auto' the labels may ask for any "
                            "variant: set engine.task)"
                        ) from None
                    raise
    for signal in ("error", "prediction", "features"):
        det = getattr(settings.detectors, signal)
        if det.kind != "none":
            build_detector(det.kind, det.params, key=f"detectors.{signal}")
            if det.warning:
                build_detector(
                    det.kind,
                    warning_params(det.kind, det.params, det.warning_params),
                    key=f"detectors.{signal}",
                    params_key=f"detectors.{signal}.warning_params",
                )


def load_settings(
    path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file, then ``DRIFTLINE_*`` overrides; validated."""
    env = os.environ if environ is None else environ
    path = path or env.get(f"{ENV_PREFIX}CONFIG") or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    _apply_env(data, env)
    settings = from_mapping(Settings, data, "")
    _check_names(settings)
    return settings
