"""Settings: defaults, TOML, ``DRIFTLINE_`` overrides, and errors that name the key."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from driftline.learners.config import (
    ConfigError,
    EngineConfig,
    LearningConfig,
    ModelDetectorConfig,
    from_mapping,
    to_mapping,
)
from driftline.learners.engine import Engine
from driftline.settings import Settings, load_settings

_module_names = itertools.count()


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftline.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_load_without_a_file_or_environment() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.model.name == "auto" and settings.model.params == {}
    assert settings.engine == EngineConfig()
    assert (settings.policy.action, settings.policy.act_on) == ("challenger", ("error",))
    # An alarm is a drift only once confirmed: a larger effect for the predictions and features
    # than for the 0/1 error, all within the same false-alarm budget (one per 1e6 events).
    detectors = settings.detectors
    assert detectors.error == ModelDetectorConfig(min_effect=0.15, confirm_events=400)
    assert (detectors.prediction.warning, detectors.prediction.warmup) == (False, 1000)
    assert [
        (d.min_effect, d.ert, d.confirm_events)
        for d in (detectors.error, detectors.prediction, detectors.features)
    ] == [(0.15, 1e6, 400), (0.3, 1e6, 500), (0.5, 1e6, 500)]
    assert (settings.alerts.warnings, settings.alerts.close_after) == (True, 2000)
    assert (settings.fallback.kind, settings.fallback.warmup_labels) == ("baseline", 50)
    assert settings.kafka.topics.alerts == "drift-alerts"


def test_default_error_detector_is_the_documented_adwin_delta() -> None:
    # README: `[detectors.error] params = {}  # default: adwin {delta = 0.01}`; River's own
    # default (0.002) misses sea-abrupt's third drift. A user's params still win.
    engine = Engine(load_settings(environ={}))
    engine.process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)
    monitor = engine.slots[None].monitor
    assert (monitor.detector.delta, monitor.warner.delta) == (0.01, 0.05)
    custom = Engine(load_settings(environ={"DRIFTLINE_DETECTORS__ERROR__PARAMS__DELTA": "0.002"}))
    custom.process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)
    assert custom.slots[None].monitor.detector.delta == 0.002


def test_a_partly_given_section_keeps_its_own_defaults(tmp_path: Path) -> None:
    # The error monitor's defaults differ from the other signals' (min_effect 0.15, 400 events):
    # naming one of its keys, in a file or the environment, must not bring the others' values.
    expected = ModelDetectorConfig(min_effect=0.15, confirm_events=400, kind="page_hinkley")
    from_env = load_settings(environ={"DRIFTLINE_DETECTORS__ERROR__KIND": "page_hinkley"})
    path = write_toml(tmp_path, '[detectors.error]\nkind = "page_hinkley"\n')
    from_file = load_settings(path, environ={})
    assert from_env.detectors.error == expected == from_file.detectors.error
    assert from_env.detectors.prediction.warmup == 1000  # a sibling section keeps its own too


def test_toml_file_then_environment_overrides(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        [model]
        name = "hoeffding_tree"
        params = { grace_period = 50 }

        [policy]
        action = "reset"
        act_on = ["error", "features"]

        [detectors.error]
        kind = "page_hinkley"
        cooldown = 50

        [kafka.topics]
        events = "in"
        """,
    )
    settings = load_settings(
        path,
        environ={
            "DRIFTLINE_POLICY__ACTION": "rollback",
            "DRIFTLINE_DETECTORS__ERROR__KIND": "adwin",
            "DRIFTLINE_DETECTORS__ERROR__PARAMS__DELTA": "0.01",
            "DRIFTLINE_ENGINE__BATCH_SIZE": "64",
            "DRIFTLINE_GUARD__ENABLED": "false",
            "DRIFTLINE_BOOTSTRAP": "broker:9093",
            "DRIFTLINE_SNAPSHOT_KEY": "not a setting: ignored here",
            "OTHER_VARIABLE": "ignored",
        },
    )
    assert (settings.model.name, settings.model.params) == ("hoeffding_tree", {"grace_period": 50})
    assert settings.policy.action == "rollback"  # the environment wins over the file
    assert settings.policy.act_on == ("error", "features")
    assert settings.detectors.error.kind == "adwin"
    assert settings.detectors.error.params == {"delta": 0.01}
    assert settings.detectors.error.cooldown == 50  # from the file, untouched by the environment
    assert settings.engine.batch_size == 64
    assert settings.guard.enabled is False
    assert settings.kafka.bootstrap == "broker:9093"
    assert settings.kafka.topics.events == "in"


def test_config_file_can_be_named_by_the_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[fallback]\nkind = "snapshot"\n')
    settings = load_settings(environ={"DRIFTLINE_CONFIG": str(path)})
    assert settings.fallback.kind == "snapshot"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("error,prediction", ("error", "prediction")), ('["guard"]', ("guard",))],
)
def test_list_from_the_environment_as_text_or_toml(text: str, expected: tuple) -> None:
    assert load_settings(environ={"DRIFTLINE_POLICY__ACT_ON": text}).policy.act_on == expected


def test_settings_round_trip_through_a_mapping() -> None:
    settings = load_settings(
        environ={
            "DRIFTLINE_MODEL__NAME": "hoeffding_tree",
            "DRIFTLINE_POLICY__ACT_ON": "error,guard",
        }
    )
    assert from_mapping(Settings, to_mapping(settings), "") == settings


# --------------------------------------------------------------------------- errors name the key


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"nmae": "x"}}, r"^model\.nmae: unknown setting; valid keys are name, "),
        ({"modle": {}}, r"^modle: unknown setting; valid keys are engine, model, "),
        ({"detectors": {"error": {"knd": "adwin"}}}, r"^detectors\.error\.knd: unknown setting"),
        ({"kafka": {"topics": {"event": "x"}}}, r"^kafka\.topics\.event: unknown setting"),
        ({"engine": {"batch_size": "ten"}}, r"^engine\.batch_size: must be an integer, got 'ten'"),
        ({"engine": {"batch_size": True}}, r"^engine\.batch_size: must be an integer"),
        ({"engine": {"batch_size": 1.5}}, r"^engine\.batch_size: must be an integer"),
        ({"guard": {"z_threshold": "high"}}, r"^guard\.z_threshold: must be a number"),
        ({"guard": {"enabled": "yes"}}, r"^guard\.enabled: must be true or false"),
        ({"model": {"name": 3}}, r"^model\.name: unknown model '3'"),
        ({"model": {"params": [1]}}, r"^model\.params: must be a table"),
        ({"detectors": {"error": 5}}, r"^detectors\.error: must be a table"),
        ({"policy": {"act_on": 5}}, r"^policy\.act_on: must be a list"),
        ({"policy": {"action": "explode"}}, r"^policy\.action: 'explode' is not one of 'none', "),
        ({"engine": {"task": "ranking"}}, r"^engine\.task: 'ranking' is not one of"),
        ({"fallback": {"kind": "zero"}}, r"^fallback\.kind: 'zero' is not one of"),
        ({"policy": {"act_on": ["errors"]}}, r"^policy\.act_on: 'errors' is not one of error, "),
        ({"engine": {"batch_size": 0}}, r"^engine\.batch_size: must be >= 1, got 0"),
        ({"engine": {"metric": "auc"}}, r"^engine\.metric: 'auc'; valid: auto, accuracy"),
        ({"engine": {"rolling_window": -1}}, r"^engine\.rolling_window: must be >= 0"),
        ({"model": {"max_keys": 0}}, r"^model\.max_keys: must be >= 1"),
        ({"fallback": {"warmup_labels": -1}}, r"^fallback\.warmup_labels: must be >= 0"),
        ({"guard": {"z_threshold": 0}}, r"^guard\.z_threshold: must be > 0"),
        ({"labels": {"ttl_seconds": 0}}, r"^labels\.ttl_seconds: must be > 0"),
        ({"labels": {"max_pending": 0}}, r"^labels\.max_pending: must be >= 1"),
        ({"snapshot": {"every_events": -1}}, r"^snapshot\.every_events: must be >= 0"),
        ({"snapshot": {"every_seconds": -1}}, r"^snapshot\.every_seconds: must be >= 0"),
        ({"kafka": {"partitions": 0}}, r"^kafka\.partitions: must be >= 1"),
        (
            {"model": {"name": "hoefding_tree"}},
            r"^model\.name: unknown model 'hoefding_tree'; valid: ",
        ),
        ({"detectors": {"error": {"kind": "kswin"}}}, r"^detectors\.error\.kind: unknown detector"),
        (
            {"detectors": {"features": {"kind": "ddm"}}},
            r"^detectors\.features\.kind: unknown detector",
        ),
        (
            {"detectors": {"prediction": {"params": {"dleta": 0.1}}}},
            r"^detectors\.prediction\.params: 'adwin' has no parameter dleta",
        ),
        (
            {"model": {"name": "hoeffding_tree", "params": {"grace_perod": 5}}},
            r"^model\.params: 'hoeffding_tree' has no parameter grace_perod; valid: ",
        ),
        (
            {"model": {"name": "naive_bayes"}, "engine": {"task": "regression"}},
            r"^model\.name: 'naive_bayes' has no regression variant",
        ),
    ],
)
def test_bad_setting_fails_naming_the_key(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    path = write_toml(tmp_path, "\n".join(f"{k} = {toml_value(v)}" for k, v in data.items()))
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def toml_value(value: Any) -> str:
    """Enough of TOML for the cases above: inline tables, arrays, strings, numbers, booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def test_bad_setting_in_a_toml_file_names_the_key(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[engine]\nbatch_size = 0\n")
    with pytest.raises(ConfigError, match=r"^engine\.batch_size: must be >= 1"):
        load_settings(path, environ={})


def test_bad_setting_from_the_environment_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.name: unknown model 'hoefding_tree'"):
        load_settings(environ={"DRIFTLINE_MODEL__NAME": "hoefding_tree"})
    with pytest.raises(ConfigError, match=r"^engine\.batch_size: must be an integer, got 'many'"):
        load_settings(environ={"DRIFTLINE_ENGINE__BATCH_SIZE": "many"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "DRIFTLINE_MODEL",
            r"^DRIFTLINE_MODEL: not a setting override; use DRIFTLINE_<SECTION>__<KEY>",
        ),
        ("DRIFTLINE_MODEL____NAME", r"^DRIFTLINE_MODEL____NAME: not a setting override"),
        (
            "DRIFTLINE_MODEL__NAME__DEEP",
            r"^DRIFTLINE_MODEL__NAME__DEEP: model\.name is not a section",
        ),
        ("DRIFTLINE_MODLE__NAME", r"^modle: unknown setting"),
    ],
)
def test_bad_environment_variable_is_named(name: str, message: str) -> None:
    environ = {name: "x"}
    if name.endswith("__DEEP"):
        environ["DRIFTLINE_MODEL__NAME"] = "linear"
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"^config file {missing} does not exist"):
        load_settings(missing, environ={})


def test_invalid_toml_file_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[model\nname = \n")
    with pytest.raises(ConfigError, match=f"^config file {path} is not valid TOML: "):
        load_settings(path, environ={})


def test_bad_warning_params_fail_at_load_naming_the_key() -> None:
    # BUG: check_names builds the drift detectors but not their warning detectors, so a typo in
    # warning_params loads fine and fails later, when the first label builds the error monitor,
    # in the middle of the stream, as "detector.params" rather than the setting's own key.
    with pytest.raises(ConfigError, match=r"^detectors\.error\.warning_params"):
        load_settings(environ={"DRIFTLINE_DETECTORS__ERROR__WARNING_PARAMS__DLETA": "0.1"})


def test_learning_config_alone_has_no_kafka_section() -> None:
    with pytest.raises(ConfigError, match=r"^kafka: unknown setting"):
        from_mapping(LearningConfig, {"kafka": {}}, "")


# --------------------------------------------------------------------------- custom models


@pytest.fixture
def model_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly written, importable module with model factories; returns its name."""
    name = f"driftline_custom_models_{next(_module_names)}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            '''
            from river import linear_model, preprocessing


            def make_pipeline(l2=0.0):
                """A scaled logistic regression with a configurable penalty."""
                return preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=l2)


            def not_a_model():
                return object()


            NOT_CALLABLE = 3
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_custom_factory_hook_builds_the_model(model_module: str) -> None:
    settings = load_settings(
        environ={
            "DRIFTLINE_MODEL__NAME": f"{model_module}:make_pipeline",
            "DRIFTLINE_MODEL__PARAMS__L2": "0.5",
        }
    )
    engine = Engine(settings)
    for i in range(60):
        engine.process({"id": i, "x": {"a": float(i % 2)}, "y": i % 2 == 0}, i)
    model = engine.slots[None].model
    assert type(model).__module__.startswith("river")
    assert model["LogisticRegression"].l2 == 0.5
    assert engine.counters["learned"] == 60
    assert engine.outputs.drain().predictions[-1]["source"] == "model"


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("no_such_factory", r"^model\.name: '{module}' has no callable 'no_such_factory'"),
        ("NOT_CALLABLE", r"^model\.name: '{module}' has no callable 'NOT_CALLABLE'"),
    ],
)
def test_custom_factory_that_is_not_there_fails_at_load(
    model_module: str, attr: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.format(module=model_module)):
        load_settings(environ={"DRIFTLINE_MODEL__NAME": f"{model_module}:{attr}"})


def test_custom_factory_module_that_cannot_be_imported_fails_clearly() -> None:
    with pytest.raises(ConfigError, match=r"^model\.name: cannot import 'no_such_package\.models'"):
        load_settings(environ={"DRIFTLINE_MODEL__NAME": "no_such_package.models:make"})
    with pytest.raises(
        ConfigError, match=r"^model\.name: ':make' is not 'package\.module:factory'"
    ):
        load_settings(environ={"DRIFTLINE_MODEL__NAME": ":make"})


def test_custom_factory_with_unknown_params_or_no_model_fails_as_config(model_module: str) -> None:
    bad_params = load_settings(
        environ={
            "DRIFTLINE_MODEL__NAME": f"{model_module}:make_pipeline",
            "DRIFTLINE_MODEL__PARAMS__L3": "1",
        }
    )
    with pytest.raises(ConfigError, match=r"^model\.params: '.*make_pipeline' has no parameter l3"):
        Engine(bad_params).process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)
    no_model = load_settings(environ={"DRIFTLINE_MODEL__NAME": f"{model_module}:not_a_model"})
    with pytest.raises(ConfigError, match=r"returned an object without learn_one\(\)"):
        Engine(no_model).process({"id": 1, "x": {"a": 1.0}, "y": True}, 0)
