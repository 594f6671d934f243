"""The backtest report PNG."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from stream.report import MAX_STRIP_ROWS, _row_labels, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _series(n: int = 2000, drop_at: int = 1000) -> list[tuple[int, float]]:
    return [(i, 0.9 if i < drop_at or i > drop_at + 300 else 0.7) for i in range(0, n, 20)]


ALERTS = [
    {"index": 1040, "kind": "warning", "detector": "adwin", "signal": "error"},
    {"index": 1090, "kind": "drift", "detector": "adwin", "signal": "error"},
    {"index": 1400, "kind": "recovered", "detector": "adwin", "signal": "error"},
    {"index": 1010, "kind": "drift", "detector": "ks", "signal": "feature:x1"},
    {"index": 1200, "kind": "warning", "detector": "adwin", "signal": "prediction"},
    {"index": 1500, "kind": "drift", "detector": "guard", "signal": "guard"},
]


def test_full_report_is_a_readable_png(tmp_path: Path) -> None:
    out = write_report(
        tmp_path / "report.png",
        metric_name="accuracy",
        series=_series(),
        baseline_series=[(i, v - 0.02) for i, v in _series()],
        true_drifts=[1000],
        alerts=ALERTS,
        title="sea-abrupt",
    )
    assert out == tmp_path / "report.png"
    assert _png_size(out) == (1200, 640)
    assert out.stat().st_size > 20_000  # a drawn chart, not a blank canvas


@pytest.mark.parametrize(
    ("true_drifts", "alerts", "baseline"),
    [([], [], None), ([500, 1500], [], None), ([], ALERTS, None), ([], [], _series())],
    ids=["nothing", "drifts-only", "alerts-only", "baseline-only"],
)
def test_report_works_without_alerts_drifts_or_baseline(
    tmp_path: Path, true_drifts: list[int], alerts: list[dict], baseline: list | None
) -> None:
    out = write_report(
        str(tmp_path / "nested" / "r.png"),  # a str path, and a folder that does not exist yet
        metric_name="MAE",
        series=_series(),
        baseline_series=baseline,
        true_drifts=true_drifts,
        alerts=alerts,
        title="t",
    )
    assert _png_size(out) == (1200, 640)
    assert out.stat().st_size > 10_000


def test_empty_series_still_writes_a_png(tmp_path: Path) -> None:
    out = write_report(
        tmp_path / "empty.png",
        metric_name="accuracy",
        series=[],
        baseline_series=[],
        true_drifts=[],
        alerts=[],
        title="empty",
    )
    assert _png_size(out) == (1200, 640)


def test_unknown_alert_kind_and_missing_fields_are_drawn_not_rejected(tmp_path: Path) -> None:
    out = write_report(
        tmp_path / "odd.png",
        metric_name="accuracy",
        series=_series(),
        baseline_series=None,
        true_drifts=[1000],
        alerts=[{"index": 1100, "kind": "paused", "signal": "error"}, {"index": 1200}],
        title="odd alerts",
    )
    assert _png_size(out) == (1200, 640)


def test_strip_rows_put_error_first_and_fold_many_signals() -> None:
    alerts = [{"index": 1, "kind": "drift", "detector": "ph", "signal": "prediction"}]
    alerts += [{"index": 2, "kind": "drift", "detector": "adwin", "signal": "error"}]
    labels, rows = _row_labels(alerts)
    assert labels == ["error (adwin)", "prediction (ph)"]
    assert rows == {("error", "adwin"): 0, ("prediction", "ph"): 1}

    many = [
        {"index": i, "kind": "drift", "detector": "ks", "signal": f"feature:x{i}"}
        for i in range(15)
    ]
    labels, rows = _row_labels(many)
    assert len(labels) == MAX_STRIP_ROWS
    assert labels[-1] == f"{15 - MAX_STRIP_ROWS + 1} other signals"
    assert set(rows.values()) == set(range(MAX_STRIP_ROWS))


def test_missing_matplotlib_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("matplotlib.backends.backend_agg", "matplotlib.figure", "matplotlib.lines"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'matplotlib") as info:
        write_report(
            tmp_path / "r.png",
            metric_name="accuracy",
            series=[],
            baseline_series=None,
            true_drifts=[],
            alerts=[],
            title="t",
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "r.png").exists()


def test_nan_metric_values_do_not_break_the_report(tmp_path: Path) -> None:
    series = [(0, float("nan")), *_series()[1:], (2000, float("nan"))]
    out = write_report(
        tmp_path / "nan.png",
        metric_name="MAE",
        series=series,
        baseline_series=[(0, float("nan"))],
        true_drifts=[1000],
        alerts=[],
        title="nan",
    )
    assert _png_size(out) == (1200, 640)
