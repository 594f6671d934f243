"""Issue 10, items 2-4: honest output, no tracebacks, no secrets.

* A backtest that scored nothing prints the metric as "n/a (why)", writes it as null and exits 1;
  an empty file is one line and exit 1, never a summary of 0 events.
* ``--out`` that is a file or cannot be created, and stdout closed early (``| head``), are one
  line on stderr (or silence for the pipe) and a non-zero exit, never a traceback.
* A secret setting (``kafka.client.sasl_plain_password``, ...) never reaches ``driftline config``,
  ``summary.json``, the printed summary, an error message or the worker's ``/health``.

Files are written here the way scripts and spreadsheets write them (``json.dumps`` per line,
``csv.writer``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.cli.main import main
from driftline.settings import REDACTED, is_secret_name, load_settings, redact, redact_text

REPO = Path(__file__).resolve().parents[1]
SECRET = "hunter2-s3cret"
CLIENT_WITH_SECRETS = (
    f'{{sasl_plain_password="{SECRET}", ssl_password="{SECRET}-tls", '
    'sasl_plain_username="driftline", security_protocol="SASL_SSL"}'
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``DRIFTLINE_*`` from the environment: start every test without any."""
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def daily_events(count: int, start: datetime | None = None) -> list[dict[str, Any]]:
    """One event a day (ISO-8601 with a zone), a label that follows a feature."""
    start = start or datetime(2024, 5, 1, tzinfo=UTC)
    return [
        {
            "id": f"d-{i}",
            "ts": (start + timedelta(days=i)).isoformat(),
            "x": {"temp": float(i % 7), "site": "north" if i % 2 else "south"},
            "y": int(i % 7 > 3),
        }
        for i in range(count)
    ]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    """The stderr of a failure: exactly one line, no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- item 2: honest output


def test_every_event_rejected_is_n_a_with_the_cause_null_in_json_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A label of the wrong type on every line (a list): each is dead-lettered as bad_label.
    events = [{"id": i, "x": {"a": i / 10}, "y": [i % 2]} for i in range(40)]
    path = write_jsonl(tmp_path / "events.jsonl", events)
    out = tmp_path / "out"
    code, text, err = run(["backtest", "--file", str(path), "--out", str(out)], capsys)
    assert code == 1
    assert "metric n/a (every event rejected: bad_label 40)" in text
    assert "0.0000" not in text
    assert "None" not in text  # the task line says "task unknown", not "None: ..."
    assert one_line(err) == "driftline backtest: nothing scored: every event rejected: bad_label 40"
    written = orjson.loads((out / "summary.json").read_bytes())
    assert written["metric"] is None
    assert written["baseline_metric"] is None and written["no_change_metric"] is None
    assert written["unscored_reason"] == "every event rejected: bad_label 40"
    assert (written["events"], written["invalid"], written["valid"]) == (40, 40, 0)


def test_every_label_too_late_names_the_ttl_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Daily data, labels 7 events (a week) later: the default TTL (an hour of event time) loses
    # them all.
    path = write_jsonl(tmp_path / "daily.jsonl", daily_events(90))
    argv = ["backtest", "--file", str(path), "--label-delay", "7"]
    code, text, err = run(argv, capsys)
    assert code == 1
    metric_line = next(line for line in text.splitlines() if "accuracy" in line)
    assert "accuracy n/a (" in metric_line
    assert "came too late" in metric_line
    assert "labels.ttl_seconds is 3600 s of event time" in metric_line
    assert "--label-delay 7 events" in metric_line
    assert "604,800 s" in metric_line  # what daily events need
    assert one_line(err).startswith("driftline backtest: nothing scored: ")

    code, printed, err = run([*argv, "--json"], capsys)
    assert code == 1
    summary = orjson.loads(printed)
    assert summary["metric"] is None
    assert summary["labels_too_late"] > 0 and summary["labels_expired"] > 0
    assert "labels.ttl_seconds" in summary["unscored_reason"]
    assert "Traceback" not in err


def test_a_ttl_long_enough_scores_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "daily.jsonl", daily_events(90))
    monkeypatch.setenv("DRIFTLINE_LABELS__TTL_SECONDS", str(8 * 86_400))
    code, printed, err = run(
        ["backtest", "--file", str(path), "--label-delay", "7", "--json"], capsys
    )
    assert code == 0, err
    summary = orjson.loads(printed)
    assert summary["metric"] is not None
    assert summary["labels_too_late"] == 0 and summary["unscored_reason"] is None


def test_some_labels_too_late_are_said_beside_a_measured_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 30 daily events (their labels expire), then 200 a second apart (theirs arrive in time).
    start = datetime(2024, 5, 1, tzinfo=UTC)
    late = daily_events(30, start)
    on_time = [
        {
            "id": f"s-{i}",
            "ts": (start + timedelta(days=31, seconds=i)).isoformat(),
            "x": {"temp": float(i % 7)},
            "y": int(i % 7 > 3),
        }
        for i in range(200)
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", late + on_time)
    code, text, err = run(["backtest", "--file", str(path), "--label-delay", "5"], capsys)
    assert code == 0, err
    assert "accuracy n/a" not in text
    assert "labels came too late and were not scored: labels.ttl_seconds" in text


@pytest.mark.parametrize("kind", ["empty jsonl", "blank jsonl", "csv header only"])
def test_a_file_without_events_is_one_line_and_exit_1(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "csv header only":
        path = tmp_path / "data.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(["id", "a", "label"])
        argv = ["backtest", "--file", str(path), "--target", "label", "--id-column", "id"]
    else:
        path = tmp_path / "events.jsonl"
        path.write_text("" if kind == "empty jsonl" else "\n  \n\n")
        argv = ["backtest", "--file", str(path)]
    out = tmp_path / "out"
    code, text, err = run([*argv, "--out", str(out)], capsys)
    assert code == 1
    assert text == ""  # no summary of 0 events
    assert one_line(err).startswith(f"driftline backtest: {path.name} has no events")
    assert not out.exists()


def test_a_file_with_no_valid_line_exits_1_with_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "garbage.jsonl"
    path.write_text("hello\nid,a,label\n[1, 2]\n")
    code, text, err = run(["backtest", "--file", str(path)], capsys)
    assert code == 1
    assert "metric n/a (every event rejected: not_json 2, not_object 1)" in text
    assert one_line(err).endswith("every event rejected: not_json 2, not_object 1")


def test_events_without_labels_are_n_a_and_a_note_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_ENGINE__TASK", "classification")
    events = [{"id": i, "x": {"a": i / 10}} for i in range(50)]
    path = write_jsonl(tmp_path / "unlabelled.jsonl", events)
    # Unlabelled events still feed the data-drift monitors: exit 0, with the reason on stderr.
    code, printed, err = run(["backtest", "--file", str(path), "--json"], capsys)
    assert code == 0
    summary = orjson.loads(printed)
    assert summary["metric"] is None
    assert all(m["metric"] is None for m in summary["models"] if not m["labels"])
    assert "no valid event had a label" in one_line(err) and "only data drift" in err
    code, text, _ = run(["backtest", "--file", str(path)], capsys)
    assert code == 0
    assert "0.0000" not in text
    assert "accuracy n/a (no valid event had a label" in text


# --------------------------------------------------------------------------- item 3: no tracebacks


def test_out_naming_an_existing_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "results"
    taken.write_text("keep me")
    argv = ["backtest", "--dataset", "sea-abrupt", "--limit", "200", "--out", str(taken)]
    code, text, err = run(argv, capsys)
    assert code == 2
    assert one_line(err) == (
        f"driftline backtest: --out {taken}: exists and is not a folder (--out names the folder "
        "that gets summary.json, the .jsonl outputs and report.png)"
    )
    assert text == ""
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize("where", ["/proc/nope", "under a file"])
def test_out_that_cannot_be_created_is_one_line(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if where == "under a file":
        (tmp_path / "file").write_text("")
        where = str(tmp_path / "file" / "out")
    elif not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    argv = ["backtest", "--dataset", "sea-abrupt", "--limit", "200", "--out", where]
    code, text, err = run(argv, capsys)
    assert code == 1
    assert one_line(err).startswith(
        f"driftline backtest: --out {where}: cannot create the folder ("
    )
    assert text == ""


def test_an_output_that_cannot_be_written_at_the_end_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "summary.json").mkdir(parents=True)  # in the way of the file
    argv = ["backtest", "--dataset", "sea-abrupt", "--limit", "200", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert one_line(err).startswith(f"driftline backtest: {out / 'summary.json'}: ")


def _subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_stdout_closed_early_is_silent_and_exits_1(extra: list[str]) -> None:
    """The reader is gone before the summary is written: silence on stderr, exit status 1."""
    command = [sys.executable, "-m", "driftline", "backtest", "--dataset", "sea-abrupt"]
    with subprocess.Popen(
        [*command, "--limit", "3000", *extra],
        cwd=REPO,
        env=_subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `| head` that has already exited
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert err == ""


@pytest.mark.parametrize("pipe", ["head -2", "head -4"])
def test_backtest_piped_into_head_shows_no_traceback(pipe: str) -> None:
    command = (
        f"set -o pipefail; {sys.executable} -m driftline backtest --dataset sea-abrupt "
        f"--limit 3000 | {pipe}"
    )
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env=_subprocess_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert done.stdout.startswith("driftline backtest: sea-abrupt  (3,000 events")
    # 0 when head read everything before exiting, 1 when the pipe closed first: never a crash.
    assert done.returncode in (0, 1)


# --------------------------------------------------------------------------- item 4: no secrets


def test_config_prints_secrets_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA__CLIENT", CLIENT_WITH_SECRETS)
    monkeypatch.setenv("DRIFTLINE_SNAPSHOT_KEY", f"{SECRET}-snapshot-key")
    code, printed, err = run(["config"], capsys)
    assert code == 0, err
    assert SECRET not in printed + err
    client = orjson.loads(printed)["kafka"]["client"]
    assert client == {
        "sasl_plain_password": REDACTED,
        "ssl_password": REDACTED,
        "sasl_plain_username": "driftline",
        "security_protocol": "SASL_SSL",
    }


def test_backtest_outputs_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA__CLIENT", CLIENT_WITH_SECRETS)
    out = tmp_path / "out"
    argv = ["backtest", "--dataset", "sea-abrupt", "--limit", "1500", "--out", str(out)]
    code, text, err = run(argv, capsys)
    assert code == 0, err
    assert SECRET not in text + err
    for path in out.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    written = orjson.loads((out / "summary.json").read_bytes())
    assert written["config"]["kafka"]["client"]["sasl_plain_password"] == REDACTED
    assert written["config"]["kafka"]["client"]["sasl_plain_username"] == "driftline"

    code, printed, err = run([*argv[:-2], "--json"], capsys)
    assert code == 0
    assert SECRET not in printed + err


def test_a_configuration_error_quoting_a_secret_redacts_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing closing brace: not TOML, read as text, refused as "must be a table, got '...'".
    monkeypatch.setenv("DRIFTLINE_KAFKA__CLIENT", f'{{sasl_plain_password="{SECRET}"')
    code, printed, err = run(["config"], capsys)
    assert code == 2
    line = one_line(err)
    assert line.startswith("driftline: configuration error: kafka.client: must be a table")
    assert SECRET not in line + printed


def test_health_shows_no_setting_and_no_secret() -> None:
    """``/health`` serves ``Worker.status()`` (driftline.live.app): built here without a broker."""
    from driftline.live.worker import Worker

    settings = load_settings(environ={"DRIFTLINE_KAFKA__CLIENT": CLIENT_WITH_SECRETS})
    assert settings.kafka.client["sasl_plain_password"] == SECRET
    worker = Worker(
        settings,
        f"{SECRET}-snapshot-key".encode(),
        publisher=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
        highwater=lambda topic, partition: None,
    )
    assert SECRET.encode() not in orjson.dumps(worker.status())


def test_redact_masks_every_secret_looking_setting_and_keeps_the_rest() -> None:
    settings = {
        "kafka": {
            "bootstrap": "broker:9092",
            "client": {
                "sasl_plain_password": SECRET,
                "sasl.oauth.token": SECRET,
                "ssl_password": SECRET,
                "ssl_keyfile": "/run/secrets/client.key",
                "proxy_url": f"http://me:{SECRET}@proxy:3128",
            },
        },
        "snapshot": {"key_file": "/run/secrets/driftline-key", "key": SECRET},
        "model": {"per_key": True, "max_keys": 100, "params": {"api_key": SECRET}},
        "service": {"credentials": {"user": "me", "secret": SECRET}, "token": ""},
    }
    shown = redact(settings)
    assert SECRET not in json.dumps(shown)
    assert shown["kafka"]["client"]["ssl_keyfile"] == "/run/secrets/client.key"  # a path
    assert shown["kafka"]["client"]["proxy_url"] == f"http://me:{REDACTED}@proxy:3128"
    assert shown["snapshot"] == {"key_file": "/run/secrets/driftline-key", "key": REDACTED}
    assert shown["model"] == {"per_key": True, "max_keys": 100, "params": {"api_key": REDACTED}}
    assert shown["service"] == {"credentials": REDACTED, "token": ""}  # nothing set: nothing hidden
    assert settings["kafka"]["client"]["sasl_plain_password"] == SECRET  # a copy: input unchanged


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("sasl_plain_password", True),
        ("ssl_password", True),
        ("client_secret", True),
        ("api_key", True),
        ("apikey", True),
        ("access_token", True),
        ("credentials", True),
        ("sasl.jaas.config", True),
        ("key", True),
        ("key_file", False),
        ("ssl_keyfile", False),
        ("max_keys", False),
        ("sasl_plain_username", False),
        ("security_protocol", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_text_masks_secrets_quoted_in_a_message() -> None:
    message = f'got \'{{sasl_plain_password="{SECRET}", sasl_mechanism="PLAIN"}}\''
    masked = redact_text(message)
    assert SECRET not in masked
    assert 'sasl_mechanism="PLAIN"' in masked
    assert redact_text("model.name: unknown model 'x'") == "model.name: unknown model 'x'"


def test_snapshots_show_redacts_secrets_in_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A snapshot's header carries model_params: a user's model may take an API key.
    from driftline.learners.snapshot import sign_snapshot

    header = {"format": 2, "model": "mypkg:make", "model_params": {"api_key": SECRET, "n": 3}}
    path = tmp_path / "model.snapshot"
    path.write_bytes(sign_snapshot({"state": 1}, header, b"k" * 32))
    capsys.readouterr()
    assert main(["snapshots", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert orjson.loads(out)["model_params"] == {"api_key": REDACTED, "n": 3}
