"""Small frictions of a first contact (issue 10, item 5): ``--config`` after the command, help
with examples, a replay that says it takes JSONL, exporting a built-in stream, no stale snapshot in
a reused ``--out``, the ignore files, an install that is not redone every run, and a parser that
builds without River."""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from driftline.cli.main import build_parser, main
from driftline.keys import KEY_ENV
from driftline.learners.models import model_names

REPO = Path(__file__).resolve().parents[1]
KEY = "a-test-key-that-is-long-enough-0123"
#: Commands that read the settings (every one but ``datasets``), each with what it needs to parse.
SETTINGS_COMMANDS = {
    "backtest": ["--dataset", "sea-abrupt"],
    "config": [],
    "serve": [],
    "produce": ["--dataset", "sea-abrupt"],
    "replay": ["--file", "x.jsonl"],
    "alerts": [],
    "snapshots": ["list"],
    "topics": ["list"],
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``DRIFTLINE_*`` from the environment: start every test without any."""
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def _write_toml(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- 1. --config anywhere


@pytest.mark.parametrize("command", sorted(SETTINGS_COMMANDS))
def test_config_goes_before_or_after_every_command_that_reads_settings(command: str) -> None:
    parser = build_parser()
    rest = SETTINGS_COMMANDS[command]
    assert parser.parse_args([command, *rest, "--config", "after.toml"]).config == "after.toml"
    assert parser.parse_args(["--config", "before.toml", command, *rest]).config == "before.toml"
    # Both: the one nearer the command's own options wins.
    both = parser.parse_args(["--config", "before.toml", command, "--config", "after.toml", *rest])
    assert both.config == "after.toml"
    assert parser.parse_args([command, *rest]).config is None


def test_backtest_reads_config_given_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_toml(tmp_path / "f.toml", '[model]\nname = "hoeffding_tree"\n')
    argv = ["--dataset", "sea-abrupt", "--limit", "600", "--json"]
    assert main(["backtest", "--config", config, *argv]) == 0
    after = orjson.loads(capsys.readouterr().out)
    assert main(["--config", config, "backtest", *argv]) == 0
    before = orjson.loads(capsys.readouterr().out)
    assert after["model"] == before["model"] == "hoeffding_tree"
    assert after["metric"] == before["metric"]

    assert main(["config", "--config", config]) == 0
    assert orjson.loads(capsys.readouterr().out)["model"]["name"] == "hoeffding_tree"


def test_a_bad_config_after_the_command_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_toml(tmp_path / "bad.toml", "[engine]\nbatch_size = 0\n")
    assert main(["backtest", "--config", config, "--dataset", "sea-abrupt", "--limit", "10"]) == 2
    assert "engine.batch_size: must be >= 1" in capsys.readouterr().err
    missing = str(tmp_path / "nope.toml")
    assert main(["config", "--config", missing]) == 2
    assert f"config file {missing} does not exist" in capsys.readouterr().err


def test_datasets_takes_no_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["datasets", "--config", "f.toml"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --config" in capsys.readouterr().err


# --------------------------------------------------------------------------- 2, 3. help


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["datasets", "config"])
def test_datasets_and_config_help_describe_and_show_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help([command], capsys)
    description = text.split("\n\n")[1]  # after the usage
    assert not description.startswith("options:") and len(description) > 100
    assert "examples:\n" in text
    examples = text.split("examples:\n", 1)[1]
    assert re.search(rf"^  driftline {command}\b", examples, re.MULTILINE)


def test_datasets_help_shows_the_export(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(["datasets"], capsys)
    assert "driftline datasets --export sea-abrupt" in text
    for option in ("--export NAME", "--out FILE", "--limit N", "--seed S"):
        assert option in text


def test_backtest_help_says_how_to_choose_the_model_and_add_a_challenger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(["backtest"], capsys)
    flat = " ".join(text.split())  # names may wrap
    assert "DRIFTLINE_MODEL__NAME=hoeffding_tree driftline backtest" in text
    assert '[model]\n    name = "hoeffding_tree"' in text
    for name in model_names():
        assert name in flat, name
    assert "DRIFTLINE_POLICY__CHALLENGERS=" in text
    assert '[policy]\n    challengers = ["hoeffding_tree"]' in text
    assert "--config FILE" in text


# --------------------------------------------------------------------------- 4. replay wants JSONL


def _spreadsheet_csv(path: Path) -> None:
    """A CSV as a spreadsheet writes it: byte-order mark, CRLF line ends, a time column."""
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "ts", "temp", "label"])
        for i in range(5):
            writer.writerow([i, f"2024-05-01 12:0{i}:00", 21.5 + i, i % 2])


@pytest.mark.parametrize("name", ["history.csv", "history.csv.gz", "history.txt"])
def test_replay_of_a_csv_says_replay_takes_jsonl(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        import gzip

        _spreadsheet_csv(tmp_path / "plain.csv")
        path.write_bytes(gzip.compress((tmp_path / "plain.csv").read_bytes()))
    else:
        _spreadsheet_csv(path)
    assert main(["replay", "--file", str(path), "--max-speed"]) == 2
    err = capsys.readouterr().err
    assert "replay takes JSONL" in err
    assert "has a time" not in err
    assert len(err.strip().splitlines()) == 1


def test_replay_of_jsonl_without_times_still_names_the_time_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"id": 1, "x": {"a": 1.0}}\n{"id": 2, "x": {"a": 2.0}}\n')
    assert main(["replay", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert "has a time in 'ts'" in err and "replay takes JSONL" not in err


# --------------------------------------------------------------------------- 5. export


def test_exported_dataset_backtests_like_the_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sea.jsonl"
    limit, seed = "6000", "7"
    assert (
        main(
            [
                "datasets",
                "--export",
                "sea-abrupt",
                "--limit",
                limit,
                "--seed",
                seed,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    note = capsys.readouterr().err
    assert f"wrote 6,000 events of sea-abrupt (seed 7) to {out}" in note
    assert f"driftline backtest --file {out} --true-drifts 5000" in note
    lines = out.read_bytes().splitlines()
    assert len(lines) == 6000
    first = orjson.loads(lines[0])
    assert sorted(first) == ["id", "ts", "x", "y"] and first["id"] == 0
    assert sorted(first["x"]) == ["x1", "x2", "x3"] and isinstance(first["y"], bool)

    assert (
        main(["backtest", "--dataset", "sea-abrupt", "--limit", limit, "--seed", seed, "--json"])
        == 0
    )
    from_dataset = orjson.loads(capsys.readouterr().out)
    assert main(["backtest", "--file", str(out), "--true-drifts", "5000", "--json"]) == 0
    from_file = orjson.loads(capsys.readouterr().out)
    assert from_file["metric"] is not None
    for key in ("events", "learned", "metric_name", "metric", "baseline_metric", "detected"):
        assert from_file[key] == from_dataset[key], key


def test_export_to_stdout_and_compressed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "--export", "friedman-drift", "--limit", "3", "--out", "-"]) == 0
    captured = capsys.readouterr()
    events = [orjson.loads(line) for line in captured.out.splitlines()]
    assert [e["id"] for e in events] == [0, 1, 2] and captured.err == ""
    assert all(isinstance(e["y"], float) and len(e["x"]) == 10 for e in events)

    import gzip

    path = tmp_path / "f.jsonl.gz"
    assert main(["datasets", "--export", "friedman-drift", "--limit", "3", "--out", str(path)]) == 0
    assert [
        orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()
    ] == events


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--export", "sea-abrupt"], "--export needs --out FILE.jsonl"),
        (["--export", "no-such", "--out", "-"], "unknown dataset 'no-such'"),
        (["--limit", "5"], "--limit goes with --export NAME"),
        (["--out", "x.jsonl"], "--out goes with --export NAME"),
        (["--export", "sea-abrupt", "--out", "-", "--json"], "--json lists the datasets"),
    ],
)
def test_export_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", *argv]) == 2
    assert message in capsys.readouterr().err


def test_export_into_a_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "--export", "sea-abrupt", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- 6. stale snapshot


def test_a_rerun_into_the_same_out_leaves_no_stale_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["backtest", "--dataset", "sea-abrupt", "--limit", "800", "--out", str(out), "--json"]
    monkeypatch.setenv(KEY_ENV, KEY)
    assert main(argv) == 0
    assert (out / "model.snapshot").is_file()
    assert "snapshot" in orjson.loads((out / "summary.json").read_bytes())
    capsys.readouterr()

    monkeypatch.delenv(KEY_ENV)
    assert main(argv) == 0
    assert not (out / "model.snapshot").exists()
    assert "snapshot" not in orjson.loads((out / "summary.json").read_bytes())


# --------------------------------------------------------------------------- 7. ignore files


def _docker_ignored(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore matching (Go ``filepath.Match`` plus ``**``, ``!`` exceptions; a
    pattern that matches a folder excludes everything under it), enough for these patterns."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"(?:/.*)?")

    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = os.path.normpath(body.strip("/"))
        if regex(body).fullmatch(path):
            ignored = not negated
    return ignored


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest() -> None:
    patterns = _dockerignore()
    copied: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.extend(line.split()[1:-1])
    assert {"pyproject.toml", "README.md", "learners", "detectors", "stream"} <= set(copied)
    for source in copied:
        root = REPO / source
        files = [root] if root.is_file() else [p for p in root.rglob("*.py") if p.is_file()]
        assert files, source
        for path in files:
            relative = path.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:
                assert not _docker_ignored(patterns, relative), relative
    for local in (
        ".venv/lib/python3.11/site-packages/river/__init__.py",
        ".kafka/kafka_2.13-3.9.0/libs/kafka.jar",
        ".git/HEAD",
        "out/summary.json",
        "backtest-out/model.snapshot",
        "stream/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/3.11/stream/cli.meta.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/README.md",
        "driftline.egg-info/PKG-INFO",
        "model.snapshot",
        "runs/a/model.snapshot",
    ):
        assert _docker_ignored(patterns, local), local


def test_gitignore_holds_what_the_quick_start_and_demo_write() -> None:
    lines = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines()}
    assert {"out/", "backtest-out/", ".venv/", ".kafka/", ".demo/"} <= lines


# --------------------------------------------------------------------------- 8. install once

STUB_PYTHON = """#!/usr/bin/env bash
# A stand-in for .venv/bin/python: logs each call; `pip install -e` "installs" driftline.
here="$(cd "$(dirname "$0")" && pwd)"
echo "$* | PYTHONWARNINGS=${PYTHONWARNINGS:-}" >> "$here/../../calls.log"
case "$*" in
  "-m pip install --quiet -e"*)
    [ -z "${STUB_FAIL:-}" ] || exit 1
    printf '#!/usr/bin/env bash\\necho "driftline $*"\\n' > "$here/driftline"
    chmod +x "$here/driftline" ;;
  "-I -c"*) [ -z "${STUB_NOT_INSTALLED:-}" ] || exit 1 ;;
esac
exit 0
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of scripts/install and scripts/demo with a stub .venv (no real pip)."""
    (tmp_path / "scripts").mkdir()
    for script in ("install", "demo"):
        shutil.copy2(REPO / "scripts" / script, tmp_path / "scripts" / script)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "driftline"\nversion = "0.1.0"\n')
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _run(checkout: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(
        [str(checkout / "scripts" / script), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pip_installs(checkout: Path) -> list[str]:
    log = checkout / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [c for c in calls if c.startswith("-m pip install --quiet -e")]


def test_install_runs_pip_once_per_extra_until_pyproject_changes(checkout: Path) -> None:
    first = _run(checkout, "install")
    assert first.returncode == 0, first.stderr
    installs = _pip_installs(checkout)
    assert len(installs) == 1 and installs[0].startswith("-m pip install --quiet -e . |")
    # The setuptools note on editable installs is silenced for this pip call.
    assert "PYTHONWARNINGS=ignore:Editable installation" in installs[0]

    again = _run(checkout, "install")
    assert again.returncode == 0 and _pip_installs(checkout) == []
    assert "driftline is installed in .venv (pyproject.toml unchanged" in again.stdout

    assert _run(checkout, "install", "--dev").returncode == 0
    assert [c.split(" |")[0] for c in _pip_installs(checkout)] == [
        "-m pip install --quiet -e .[dev]"
    ]
    assert _run(checkout, "install", "--dev").returncode == 0
    assert _run(checkout, "install").returncode == 0  # [dev] includes the base install
    assert _pip_installs(checkout) == []

    with open(checkout / "pyproject.toml", "a") as handle:
        handle.write('dependencies = ["river==0.26.1"]\n')
    assert _run(checkout, "install").returncode == 0
    assert len(_pip_installs(checkout)) == 1
    assert _run(checkout, "install", "--force").returncode == 0
    assert len(_pip_installs(checkout)) == 1
    assert _run(checkout, "install", STUB_NOT_INSTALLED="1").returncode == 0  # a broken .venv
    assert len(_pip_installs(checkout)) == 1


def test_a_failed_install_leaves_no_stamp(checkout: Path) -> None:
    assert _run(checkout, "install").returncode == 0
    assert _run(checkout, "install", "--force", STUB_FAIL="1").returncode != 0
    _pip_installs(checkout)
    assert _run(checkout, "install").returncode == 0
    assert len(_pip_installs(checkout)) == 1  # tried again, not skipped


def test_demo_installs_only_on_its_first_run(checkout: Path) -> None:
    for expected_installs in (1, 0):
        demo = _run(checkout, "demo", "--backtest")
        assert demo.returncode == 0, demo.stderr
        assert "driftline backtest --dataset agrawal-abrupt --out backtest-out" in demo.stdout
        assert len(_pip_installs(checkout)) == expected_installs


def test_demo_runs_the_live_loop(checkout: Path) -> None:
    assert _run(checkout, "demo", "--keep").returncode == 0
    calls = (checkout / "calls.log").read_text().splitlines()
    assert any(c.startswith("scripts/live_demo.py --keep") for c in calls), calls


def test_install_rejects_unknown_options(checkout: Path) -> None:
    run = _run(checkout, "install", "--devv")
    assert run.returncode == 2 and "usage: scripts/install [--dev] [--force]" in run.stderr


# --------------------------------------------------------------------------- 9. a light parser


def test_the_parser_and_every_help_page_build_without_heavy_imports() -> None:
    code = """
import sys
from driftline.cli.main import build_parser
parser = build_parser()
parser.format_help()
sub = next(a for a in parser._actions if getattr(a, "choices", None) and "backtest" in a.choices)
for command in sub.choices.values():
    command.format_help()
heavy = {"river", "pandas", "faust", "matplotlib", "numpy", "scipy", "kafka", "aiokafka", "mode"}
print(sorted(heavy & {name.split(".")[0] for name in sys.modules}))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"
