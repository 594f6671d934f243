"""A user's own files, written here the way spreadsheets and scripts write them (issue 10, item 1):
Excel's byte-order mark and ``;`` with decimal commas, tab- and pipe-separated files, gzip, flat
JSONL, times without a zone, class labels written ``0.0`` / ``1.0``, a key column and ids that
repeat. Each works with the first command, or fails with one line and exit status 2."""

from __future__ import annotations

import bz2
import csv
import gzip
import json
import lzma
import os
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.cli.main import main
from driftline.offline.backtest import run_backtest
from driftline.offline.sources import open_source
from driftline.settings import load_settings

ROWS = 400
FIELDS = ["id", "ts", "temp", "site", "label"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``DRIFTLINE_*`` from the environment: start every test without any."""
    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def records(n: int = ROWS, seed: int = 7) -> list[dict[str, Any]]:
    """A learnable stream as a spreadsheet holds it: string ids, times without a zone, a number,
    a category and a 0/1 class that pandas writes as ``0.0`` / ``1.0`` (a float column)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        temp = round(rng.uniform(0, 40), 3)
        rows.append(
            {
                "id": f"order-{1000 + i}",
                "ts": f"2024-05-01 {i // 3600:02}:{i // 60 % 60:02}:{i % 60:02}",
                "temp": temp,
                "site": "north" if i % 3 else "south",
                "label": float(temp > 20),
            }
        )
    return rows


def write_csv(
    path: Path,
    rows: list[dict[str, Any]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    decimal_comma: bool = False,
    opener: Any = open,
) -> Path:
    """As ``csv`` writes it (CRLF line ends, like Excel); ``decimal_comma`` as a German Excel."""
    with opener(path, "wt", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        for row in rows:
            if decimal_comma:
                row = {k: str(v).replace(".", ",") if k == "temp" else v for k, v in row.items()}
            writer.writerow(row)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], opener: Any = open) -> Path:
    with opener(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return path


def backtest_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    """Run ``driftline backtest ... --json``: the summary and what went to stderr."""
    assert main(["backtest", *argv, "--json"]) == 0
    captured = capsys.readouterr()
    return orjson.loads(captured.out), captured.err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``driftline backtest ...``: it must exit 2 with exactly one line on stderr."""
    assert main(["backtest", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("driftline backtest: ")
    assert "Traceback" not in captured.err
    return lines[0]


def first_events(n: int = 3, **options: Any) -> list[Any]:
    source = open_source(**options, notify=lambda note: None)
    return [next(source.items) for _ in range(n)]


# --------------------------------------------------------------------------- encodings, delimiters


def test_excel_csv_with_a_byte_order_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "export.csv", records(), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfid,")
    out = tmp_path / "out"
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--out", str(out)
    )
    assert (summary["events"], summary["invalid"], summary["learned"]) == (ROWS, 0, ROWS)
    ids = [orjson.loads(line)["id"] for line in (out / "predictions.jsonl").read_bytes().split()]
    assert ids[:2] == ["order-1000", "order-1001"]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_delimiter_is_sniffed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], delimiter: str
) -> None:
    path = write_csv(tmp_path / "data.csv", records(), delimiter=delimiter, encoding="utf-8-sig")
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert (summary["events"], summary["invalid"], summary["learned"]) == (ROWS, 0, ROWS)
    assert summary["dead_letter_reasons"] == {}
    (event,) = first_events(1, file=str(path), target="label", id_column="id", time_column="ts")
    assert event["x"] == {"temp": records()[0]["temp"], "site": "south"}


def test_semicolon_csv_with_decimal_commas_reads_numbers(tmp_path: Path) -> None:
    # A spreadsheet where the comma is the decimal mark writes ";" between fields and "21,5".
    path = write_csv(
        tmp_path / "data.csv", records(), delimiter=";", encoding="utf-8-sig", decimal_comma=True
    )
    assert re.search(rb";\d+,\d+;", path.read_bytes())  # 21,5 for 21.5
    events = first_events(ROWS, file=str(path), target="label", id_column="id", time_column="ts")
    assert [e["x"]["temp"] for e in events] == [r["temp"] for r in records()]
    summary = run_backtest(
        load_settings(environ={}),
        open_source(file=str(path), target="label", id_column="id", time_column="ts"),
        show_progress=False,
    )
    assert (summary["invalid"], summary["learned"]) == (0, ROWS)
    assert summary["metric"] > 0.8


def test_excel_sep_line_and_an_explicit_delimiter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = write_csv(tmp_path / "body.csv", records(), delimiter=";").read_text()
    path = tmp_path / "data.csv"
    path.write_text("sep=;\r\n" + body)
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id"
    )
    assert (summary["events"], summary["invalid"]) == (ROWS, 0)
    # --delimiter wins over sniffing: here one column only, so the target is not found.
    line = refused(capsys, "--file", str(path), "--target", "label", "--delimiter", "|")
    assert "--target 'label' is not a column" in line
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--delimiter", ";", "--limit", "50"
    )
    assert (summary["events"], summary["invalid"]) == (50, 0)


def test_delimiter_option_takes_one_character_or_tab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.tsv", records(60), delimiter="\t")
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--delimiter", "tab"
    )
    assert (summary["events"], summary["invalid"]) == (60, 0)
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--file", str(path), "--target", "label", "--delimiter", ";;"])
    assert exited.value.code == 2
    assert "expected one character" in capsys.readouterr().err


# --------------------------------------------------------------------------- compressed files


@pytest.mark.parametrize(
    "suffix, opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)]
)
def test_compressed_csv_and_jsonl_are_read_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, opener: Any
) -> None:
    rows = records()
    csv_path = write_csv(tmp_path / f"data.csv{suffix}", rows, opener=opener)
    jsonl_path = write_jsonl(tmp_path / f"history.jsonl{suffix}", rows, opener=opener)
    for path in (csv_path, jsonl_path):
        source = open_source(file=str(path), target="label", id_column="id", time_column="ts")
        assert source.total == ROWS  # the progress line counts through the compression
        summary, _ = backtest_json(
            capsys, "--file", str(path), "--target", "label", "--id-column", "id",
            "--time-column", "ts",
        )  # fmt: skip
        assert (summary["events"], summary["invalid"], summary["learned"]) == (ROWS, 0, ROWS)


def test_contract_jsonl_gz_goes_as_it_is(tmp_path: Path) -> None:
    lines = [{"id": i, "x": {"a": i % 7}, "y": i % 2} for i in range(100)]
    path = write_jsonl(tmp_path / "events.jsonl.gz", lines, opener=gzip.open)
    source = open_source(file=str(path))
    items = list(source.items)
    assert source.total == 100
    assert items[0] == json.dumps(lines[0]).encode()  # raw bytes: dead letters keep the line


def test_a_broken_gzip_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv.gz", records(), opener=gzip.open)
    path.write_bytes(path.read_bytes()[:-200])  # a download cut short
    assert "cannot be read" in refused(capsys, "--file", str(path), "--target", "label")
    plain = tmp_path / "plain.csv.gz"
    plain.write_text("a,label\n1,0\n")  # named .gz, not gzip
    assert "cannot be read" in refused(capsys, "--file", str(plain), "--target", "label")


def test_other_files_are_refused_naming_what_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.csv.zip"
    path.write_bytes(b"PK\x03\x04")
    line = refused(capsys, "--file", str(path), "--target", "label")
    assert "expected .jsonl" in line and ".gz" in line
    array = tmp_path / "data.json"
    array.write_text(json.dumps(records(5), indent=2))  # json.dump, not JSON lines
    assert "one object per line" in refused(capsys, "--file", str(array), "--target", "label")


# --------------------------------------------------------------------------- flat JSONL


def test_flat_jsonl_with_a_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # What pandas' df.to_json(orient="records", lines=True) and most scripts write.
    rows = [{"id": i, "a": round(i % 10 / 10, 1), "b": "x" if i % 2 else "y"} for i in range(300)]
    for row in rows:
        row["label"] = int(row["a"] > 0.45)
    path = write_jsonl(tmp_path / "flat.jsonl", rows)
    out = tmp_path / "out"
    summary, _ = backtest_json(capsys, "--file", str(path), "--target", "label", "--out", str(out))
    assert (summary["events"], summary["invalid"], summary["learned"]) == (300, 0, 300)
    assert summary["dead_letter_reasons"] == {}
    assert summary["task"] == "classification"
    assert summary["metric"] > 0.8
    first = orjson.loads((out / "predictions.jsonl").read_bytes().split(b"\n")[0])
    assert first["id"] == 0
    (event,) = first_events(1, file=str(path), target="label")
    assert event == {"id": 0, "x": {"a": 0.0, "b": "y"}, "y": 0}


def test_flat_jsonl_without_a_target_fails_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "flat.jsonl", [{"id": 1, "a": 0.3, "label": 1}] * 5)
    line = refused(capsys, "--file", str(path), "--out", str(tmp_path / "out"))
    assert 'no "x" object: for flat records pass --target COLUMN' in line
    assert "id, a, label" in line
    assert not (tmp_path / "out").exists()  # refused before anything ran
    assert "--target 'y' is not a field" in refused(capsys, "--file", str(path), "--target", "y")


def test_flat_jsonl_roles_and_contract_lines(tmp_path: Path) -> None:
    rows = [
        {"order": "o1", "when": "2024-05-01 12:00:00", "shop": "s1", "a": 1, "id": 9, "label": 1},
        {"id": 2, "x": {"a": 2}, "y": 0},  # a line in the contract goes as it is
        {"order": "o3", "when": "2024-05-01T12:00:01+02:00", "shop": "s2", "a": 3, "label": 0},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    events = first_events(
        3, file=str(path), target="label", id_column="order", time_column="when", key_column="shop"
    )
    noon = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    # "id", "key", "ts" are never features; the columns named are not either.
    assert events[0] == {"id": "o1", "x": {"a": 1}, "y": 1, "ts": noon, "key": "s1"}
    assert events[1] == json.dumps(rows[1]).encode()
    assert events[2]["ts"] == "2024-05-01T12:00:01+02:00"  # a zone given is kept


# --------------------------------------------------------------------------- times and hints


def test_times_without_a_zone_are_read_as_utc_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", records())
    summary, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert summary["dead_letter_reasons"] == {}
    assert (summary["events"], summary["learned"]) == (ROWS, ROWS)
    assert err.count("note: times without a zone read as UTC; --timezone to change") == 1
    assert "warning" not in err
    (event,) = first_events(1, file=str(path), target="label", time_column="ts")
    assert event["ts"] == int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)


def test_timezone_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path / "data.csv", records(60))
    source = open_source(file=str(path), target="label", time_column="ts", timezone="Europe/Berlin")
    # 2024-05-01 00:00 in Berlin (summer time, UTC+2) is 2024-04-30 22:00 UTC.
    assert next(source.items)["ts"] == int(datetime(2024, 4, 30, 22, tzinfo=UTC).timestamp() * 1000)
    summary, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--time-column", "ts",
        "--timezone", "Europe/Berlin",
    )  # fmt: skip
    assert summary["dead_letter_reasons"] == {}
    assert "read as UTC" not in err
    line = refused(capsys, "--file", str(path), "--target", "label", "--timezone", "Mars/Olympus")
    assert "--timezone 'Mars/Olympus' is not a time zone name" in line


def test_a_time_column_without_times_fails_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**r, "ts": f"05/01/2024 12:{i % 60:02}"} for i, r in enumerate(records(50))]
    path = write_csv(tmp_path / "us.csv", rows)
    line = refused(capsys, "--file", str(path), "--target", "label", "--time-column", "ts")
    assert "--time-column 'ts' of us.csv holds no time: '05/01/2024 12:00'" in line


def test_columns_that_look_like_a_time_or_an_id_are_pointed_at_not_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", records())
    summary, err = backtest_json(capsys, "--file", str(path), "--target", "label")
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 2, err
    assert "column 'ts' looks like a time" in err and "--time-column ts" in err
    assert "column 'id' has a new value on 100% of the first 400 rows" in err
    assert "--id-column id" in err
    # Nothing is excluded on a guess: both are still features.
    (event,) = first_events(1, file=str(path), target="label")
    assert set(event["x"]) == {"id", "ts", "temp", "site"}
    assert summary["events"] == ROWS
    # A rising integer column (a row number, epoch milliseconds) is pointed at too.
    numbered = [{"n": i, **r} for i, r in enumerate(records())]
    path = write_csv(tmp_path / "numbered.csv", numbered)
    _, err = backtest_json(capsys, "--file", str(path), "--target", "label")
    assert "column 'n' rises on every row (first 400)" in err
    assert "pass --id-column n or --time-column n" in err
    # A category with few values is a feature, said nothing about.
    assert "'site'" not in err and "'temp'" not in err
    # With both roles named, the columns are the user's choice: nothing is said.
    _, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert "warning" not in err


# --------------------------------------------------------------------------- labels


def test_labels_written_as_floats_are_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", records())
    assert b",1.0\r\n" in path.read_bytes()
    summary, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert (summary["task"], summary["task_reason"]) == (
        "classification",
        "inferred from integer labels",
    )
    assert (summary["invalid"], summary["learned"]) == (0, ROWS)
    assert summary["metric_name"] == "accuracy"
    assert "'label' holds whole numbers written like 0.0: read as class labels" in err
    (event,) = first_events(1, file=str(path), target="label")
    assert event["y"] == 0 and type(event["y"]) is int


def test_forced_classification_accepts_float_written_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_ENGINE__TASK", "classification")
    path = write_csv(tmp_path / "data.csv", records())
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id"
    )
    assert (summary["task"], summary["invalid"], summary["learned"]) == ("classification", 0, ROWS)


def test_forced_regression_keeps_float_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_ENGINE__TASK", "regression")
    path = write_csv(tmp_path / "data.csv", records())
    summary, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert (summary["task"], summary["invalid"], summary["learned"]) == ("regression", 0, ROWS)
    assert "class labels" not in err


def test_fractional_labels_stay_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{**r, "label": r["temp"] / 2} for r in records()]
    path = write_csv(tmp_path / "data.csv", rows)
    summary, err = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id", "--time-column", "ts"
    )
    assert (summary["task"], summary["invalid"]) == ("regression", 0)
    assert "class labels" not in err


# --------------------------------------------------------------------------- keys and ids


def test_key_column_for_per_key_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "data.csv", records())
    (event,) = first_events(1, file=str(path), target="label", key_column="site")
    assert event["key"] == "south" and "site" not in event["x"]
    monkeypatch.setenv("DRIFTLINE_MODEL__PER_KEY", "true")
    monkeypatch.setenv("DRIFTLINE_MODEL__MAX_KEYS", "1")  # one model at a time: keys evicted
    out = tmp_path / "out"
    summary, _ = backtest_json(
        capsys, "--file", str(path), "--target", "label", "--id-column", "id",
        "--time-column", "ts", "--key-column", "site", "--out", str(out),
    )  # fmt: skip
    assert (summary["invalid"], summary["learned"]) == (0, ROWS)
    assert summary["keys_evicted"] > 0  # one model per site
    keys = [orjson.loads(line)["key"] for line in (out / "predictions.jsonl").read_bytes().split()]
    assert keys[:3] == ["south", "north", "north"]
    assert "--key-column 'shop' is not a column" in refused(
        capsys, "--file", str(path), "--target", "label", "--key-column", "shop"
    )


def test_repeated_ids_with_late_labels_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An export with one row per order line: the order id repeats.
    rows = [{**r, "id": f"order-{i // 2}"} for i, r in enumerate(records())]
    path = write_csv(tmp_path / "lines.csv", rows)
    out = tmp_path / "out"
    args = ["--file", str(path), "--target", "label", "--time-column", "ts"]
    line = refused(capsys, *args, "--id-column", "id", "--label-delay", "20", "--out", str(out))
    assert "--id-column 'id' is not unique in lines.csv: 'order-0' on rows 0 and 1" in line
    assert "late labels are joined by id" in line
    assert not out.exists()  # refused before the run
    # Inline labels need no join; without --id-column the row number is the id.
    summary, _ = backtest_json(capsys, *args, "--id-column", "id")
    assert summary["learned"] == ROWS
    summary, _ = backtest_json(capsys, *args, "--label-delay", "20")
    assert (summary["learned"], summary["labels_too_late"]) == (ROWS, 0)


def test_repeated_ids_in_jsonl_with_late_labels_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [{"id": i % 50, "x": {"a": i}, "y": i % 2} for i in range(100)]
    path = write_jsonl(tmp_path / "events.jsonl.gz", lines, opener=gzip.open)
    line = refused(capsys, "--file", str(path), "--label-delay", "5")
    assert "the event id is not unique in events.jsonl.gz: 0 on rows 0 and 50" in line


def test_produce_sends_a_row_it_cannot_parse_as_its_original_bytes() -> None:
    # A broken CSV row reached `driftline produce` as an Unparsed record, which orjson cannot
    # serialise (TypeError, a traceback): it goes out as its own bytes, for the worker to
    # dead-letter with the reason, as the backtest does.
    from driftline.cli.produce import encode_event
    from driftline.learners.events import InvalidRecord, Unparsed

    row = Unparsed('1,2.5,"unclosed', InvalidRecord("bad_csv_row", "unclosed quote"))
    assert encode_event(row, strip_label=True) == (None, b'1,2.5,"unclosed', None)


def test_a_cp1252_csv_is_named_as_such_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Excel's plain "CSV" on Windows: cp1252, where "é" is one byte that is not UTF-8.
    path = tmp_path / "export.csv"
    path.write_bytes("id,city,temp,label\n1,Orléans,20.5,1\n2,Nîmes,21.0,0\n".encode("cp1252"))
    code = main(["backtest", "--file", str(path), "--target", "label"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "is not UTF-8" in err and "iconv -f cp1252" in err
