"""The Python API (``import driftline``): one package, an engine fed dicts or a DataFrame, and a
backtest that returns what ``driftline backtest`` prints."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import orjson
import pandas as pd
import pytest
from river import linear_model, preprocessing

import driftline
from driftline.cli.main import main
from driftline.learners.config import ConfigError

#: What differs between two runs of the same backtest: the clock.
TIMING = ("events_per_second",)


def _cli_summary(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["backtest", *argv, "--json"]) == 0
    return orjson.loads(capsys.readouterr().out)


def _comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in (*TIMING, "config")}


def test_backtest_of_a_dataset_equals_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli_summary(capsys, "--dataset", "sea-abrupt", "--limit", "6000", "--label-delay", "50")
    api = driftline.backtest(dataset="sea-abrupt", limit=6000, label_delay=50)
    assert api["events"] == 6000 and api["learned"] > 5000
    assert _comparable(api) == _comparable(cli)


def test_backtest_of_a_dataframe_equals_the_cli_on_the_same_csv(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "a": rng.normal(0, 1, 3000).round(3),
            "b": rng.integers(0, 5, 3000),  # NumPy ints: features all the same
            "city": rng.choice(["oslo", "rome"], 3000),
        }
    )
    frame["label"] = (frame.a + frame.b / 5 > 0.5).astype(int)
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    cli = _cli_summary(capsys, "--file", str(path), "--target", "label")
    api = driftline.backtest(frame, target="label")
    assert api["task"] == "classification" and api["labelled"] == 3000
    assert api["metric"] == pytest.approx(cli["metric"], abs=0)  # the very same predictions
    assert api["alerts"] == cli["alerts"] and api["models"] == cli["models"]
    from_file = driftline.backtest(file=path, target="label")
    assert _comparable(from_file) == _comparable(cli)


def test_engine_feeds_dicts_and_dataframes_and_counts_ids_on() -> None:
    engine = driftline.Engine(
        model=preprocessing.StandardScaler() | linear_model.LogisticRegression()
    )
    frame = pd.DataFrame({"x": [1.0, float("nan"), 3.0], "y": [True, False, None]})
    fed = engine.feed(frame, target="y")
    assert [p["id"] for p in fed.predictions] == [0, 1, 2]
    assert engine.summary()["labelled"] == 2  # the row with no label waits for one
    engine.feed([{"x": 2.0, "y": True}], target="y")
    engine.feed({"id": "late-1", "x": {"x": 5.0}})  # one event in the contract, no label
    assert [p["id"] for p in engine.predictions] == [0, 1, 2, 3, "late-1"]
    engine.label("late-1", True)
    summary = engine.summary()
    assert summary["events"] == 5 and summary["labelled"] == 4 and summary["learned"] == 4
    assert summary["models"][0]["name"].startswith("Pipeline#")


def test_engine_puts_bad_rows_in_dead_letters_and_goes_on() -> None:
    engine = driftline.Engine()
    fed = engine.feed([{"x": 1.0, "y": 1}, {"x": "n/a", "y": 1}, {"x": 2.0, "y": 0}], target="y")
    assert len(fed.predictions) == 3  # a text value is a string feature, not an error
    engine.feed([{"id": 9, "x": "not a mapping"}])
    assert [d["reason"] for d in engine.dead_letters] == ["bad_x"]
    assert engine.summary()["dead_letter_reasons"] == {"bad_x": 1}


def test_config_from_a_mapping_a_file_or_a_name(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DRIFTLINE_CONFIG", raising=False)
    config = driftline.load_config({"policy": {"action": "reset"}}, model="hoeffding_tree")
    assert (config.policy.action, config.model.name) == ("reset", "hoeffding_tree")
    with pytest.raises(ConfigError, match="no regression variant"):
        driftline.load_config({}, model="naive_bayes")  # checked as a settings file is
    path = tmp_path / "d.toml"
    path.write_text('[model]\nname = "hoeffding_tree"\n')
    assert driftline.load_config(path).model.name == "hoeffding_tree"
    monkeypatch.setenv("DRIFTLINE_POLICY__ACTION", "rollback")  # as for the CLI
    assert driftline.load_config({}).policy.action == "rollback"
    with pytest.raises(ConfigError, match=r"policy\.acton"):
        driftline.load_config({"policy": {"acton": "reset"}})
    with pytest.raises(ConfigError, match="unknown model"):
        driftline.Engine(model="hoefding_tree")
    with pytest.raises(TypeError, match="River model"):
        driftline.Engine(model=object())
    with pytest.raises(ValueError, match="target 'yy' is not a column of DataFrame"):
        driftline.backtest(pd.DataFrame({"x": [1.0], "y": [True]}), target="yy")
    with pytest.raises(ValueError, match="time_column 'when' is not a column of records"):
        driftline.Engine().feed([{"x": 1.0, "y": True}], target="y", time_column="when")
    with pytest.raises(ValueError, match="exactly one source"):
        driftline.backtest(dataset="sea-abrupt", file="x.csv")


def test_a_model_object_is_cloned_for_each_fresh_model() -> None:
    prototype = linear_model.LogisticRegression(l2=0.01)
    engine = driftline.Engine(model=prototype, config={"policy": {"action": "reset"}})
    engine.feed([{"a": float(i % 7), "y": i % 7 > 3} for i in range(300)], target="y")
    model = next(iter(engine.core.slots.values())).model
    assert model is not prototype and model.l2 == 0.01
    assert not prototype._weights  # the object passed in learned nothing
    assert math.isfinite(engine.summary()["metric"])


def test_import_driftline_is_light_and_there_is_no_stream_package() -> None:
    code = (
        "import importlib.util, sys, driftline\n"
        "heavy = [m for m in ('river', 'faust', 'pandas', 'driftline.notebook') if m in sys.modules]\n"
        "print(heavy, importlib.util.find_spec('stream'), importlib.util.find_spec('learners'))"
    )
    # -I: the checkout's folders are not on sys.path; only what the install put there counts.
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    assert out.strip() == "[] None None"
