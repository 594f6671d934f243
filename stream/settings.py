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
driftline.detectors.config_error.ConfigError: model.name: unknown model 'hoefding_tree'; valid: linear, ...
>>> load_settings(environ={"DRIFTLINE_POLICY__ACTION": "reset"}).policy.action
'reset'
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.detectors.registry import build_detector, warning_params
from driftline.learners.config import ConfigError, LearningConfig, from_mapping
from driftline.learners.models import build_model, check_model_name

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
    #: A signed snapshot file (e.g. a backtest's model.snapshot) that a partition with no snapshot
    #: of its own starts from: its models, detectors and guard, from the first offset.
    warm_start: str = ""


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


def check_names(settings: LearningConfig) -> None:
    """Every model and detector named can be built (a typo fails at load, not mid-stream)."""
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
    path: str | Path | None = None,
    environ: typing.Mapping[str, str] | None = None,
    *,
    data: typing.Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then the TOML file (or ``data``, a mapping of the same shape), then
    ``DRIFTLINE_*`` overrides; validated."""
    env = os.environ if environ is None else environ
    if data is not None:
        if path is not None:
            raise ValueError("give a settings file or a mapping, not both")
        return _validated(copy.deepcopy(dict(data)), env)
    path = path or env.get(f"{ENV_PREFIX}CONFIG") or None
    loaded: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return _validated(loaded, env)


def _validated(data: dict[str, Any], env: typing.Mapping[str, str]) -> Settings:
    _apply_env(data, env)
    settings = from_mapping(Settings, data, "")
    check_names(settings)
    return settings


# --------------------------------------------------------------------------- redaction

#: What a redacted value is shown as.
REDACTED = "***"
#: Words of a setting's name that make its value a secret (the name is split on ``_ . -``).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "token",
        "credential",
        "credentials",
        "apikey",
        "jaas",
    }
)
_NAME_SPLIT = re.compile(r"[_.\-]+")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """A setting whose value is a secret, by its name: a password, secret, token, credentials, or
    a key itself (``api_key``, ``key``). A *path* to a key (``key_file``, ``ssl_keyfile``) is not.

    >>> [is_secret_name(n) for n in ("sasl_plain_password", "sasl.oauth.token", "api_key", "key")]
    [True, True, True, True]
    >>> [is_secret_name(n) for n in ("key_file", "ssl_keyfile", "max_keys", "sasl_plain_username")]
    [False, False, False, False]
    """
    words = [w for w in _NAME_SPLIT.split(name.lower()) if w]
    if not words:
        return False
    return bool(SECRET_WORDS.intersection(words)) or words[-1] in ("key", "apikey", "privatekey")


def _redact_value(name: str | None, value: Any) -> Any:
    unset = value is None or isinstance(value, bool) or value in ("", {}, [], ())
    if name is not None and not unset and is_secret_name(name):
        return REDACTED  # a whole table too: ``credentials = {user = ..., ...}``
    if isinstance(value, dict):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(name, v) for v in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", value)
    return value


def redact(mapping: typing.Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a settings mapping (``to_mapping(settings)``) that is safe to print, log or write:
    every value whose name looks secret (:func:`is_secret_name`), at any depth, becomes ``***``,
    and a password inside a URL (``https://user:pw@host``) too. The one function every output of
    the settings goes through: ``driftline config``, a backtest's ``summary.json``, logs.

    >>> redact({"kafka": {"client": {"sasl_plain_password": "hunter2", "sasl_mechanism": "PLAIN"}},
    ...         "snapshot": {"key_file": "/run/secrets/k"}, "model": {"per_key": True}})
    {'kafka': {'client': {'sasl_plain_password': '***', 'sasl_mechanism': 'PLAIN'}},
     'snapshot': {'key_file': '/run/secrets/k'}, 'model': {'per_key': True}}
    >>> redact({"proxy_url": "http://me:hunter2@proxy:3128"})
    {'proxy_url': 'http://me:***@proxy:3128'}
    """
    return {str(k): _redact_value(str(k), v) for k, v in mapping.items()}


_TEXT_SECRET = re.compile(
    r"(?P<name>[\w.\-]+)(?P<sep>[\"']?\s*[=:]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"?|'(?:[^'\\]|\\.)*'?|[^\s,;}\]\"']+)"
)


def redact_text(text: str) -> str:
    """A message (a configuration error quoting what it was given) with the value of every
    secret-looking ``name = value`` / ``name: value`` in it, and URL passwords, replaced by ``***``.

    >>> redact_text("kafka.client: must be a table, got 'sasl_plain_password = hunter2'")
    "kafka.client: must be a table, got 'sasl_plain_password = ***'"
    """

    def mask(match: re.Match[str]) -> str:
        if not is_secret_name(match["name"].strip("\"'")):
            return match[0]
        return f"{match['name']}{match['sep']}{REDACTED}"

    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", _TEXT_SECRET.sub(mask, text))
