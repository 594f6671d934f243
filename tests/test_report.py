"""The backtest report PNG."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from driftline.offline.report import (
    MAX_STRIP_ROWS,
    _row_labels,
    build_figure,
    fallback_spans,
    resolved_model_name,
    write_report,
)

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


def _figure(**overrides: object) -> object:
    kwargs: dict = {
        "metric_name": "rolling accuracy (500 events)",
        "series": [(0, 0.0), (20, 0.3), *_series()[2:]],  # a warm-up spike at the start
        "baseline_series": [(0, 0.0), *_series()[1:]],
        "true_drifts": [1000],
        "alerts": [*ALERTS, {"index": 1000, "kind": "drift", "detector": "x", "signal": "error"}],
        "title": "t",
    }
    kwargs.update(overrides)
    return build_figure(**kwargs)


def test_warm_up_points_are_not_plotted() -> None:
    fig = _figure()
    main = fig.axes[0]
    curves = [line for line in main.lines if line.get_label().startswith(("rolling", "baseline"))]
    assert len(curves) == 2
    for line in curves:
        xs = list(line.get_xdata())
        assert xs[0] >= 0.05 * 1980  # the first plotted point is past the warm-up
        assert min(line.get_ydata()) >= 0.7  # no spike from a model that knows nothing yet


def test_title_names_the_resolved_model_and_headline_numbers() -> None:
    class LogisticRegression:
        pass

    class OneVsRestClassifier:
        def __init__(self) -> None:
            self.classifier = LogisticRegression()

    class Pipeline:
        def __init__(self, last: object) -> None:
            self.steps = {"scale": object(), "model": last}

    assert resolved_model_name("auto", Pipeline(LogisticRegression())) == "LogisticRegression"
    name = resolved_model_name("auto", Pipeline(OneVsRestClassifier()))
    assert name == "LogisticRegression (one-vs-rest)"
    assert "auto" not in name

    summary = {
        "metric_name": "accuracy",
        "metric": 0.9373,
        "baseline_metric": 0.9213,
        "true_drifts": [1000],
        "detected": [1000],
        "detection_delay_mean": 90.0,
        "false_alarms": 0,
        "promotions": 2,
        "predicted_by": {"fallback": 7},
    }
    fig = _figure(title=f"sea: {name} model", summary=summary)
    assert "LogisticRegression" in fig._suptitle.get_text()
    headline = fig.axes[0].get_title()
    assert "accuracy 0.9373 (no adaptation 0.9213)" in headline
    assert "drifts found 1/1, mean delay 90 events" in headline
    assert "promotions 2, fallback predictions 7" in headline


@pytest.mark.parametrize(
    ("metric", "better"),
    [("rolling mae (500 events)", "lower"), ("rolling rmse", "lower"), ("accuracy", "higher")],
)
def test_y_label_says_which_direction_is_better(metric: str, better: str) -> None:
    assert _figure(metric_name=metric).axes[0].get_ylabel() == f"{metric} ({better} is better)"


def test_true_drift_stays_visible_over_an_alert_at_the_same_index() -> None:
    main = _figure().axes[0]
    at_drift = [line for line in main.lines if list(line.get_xdata()) == [1000, 1000]]
    true_line = next(line for line in at_drift if line.get_linestyle() == "--")
    alert_line = next(line for line in at_drift if line.get_color() == "#d62728")
    assert true_line.get_zorder() > alert_line.get_zorder()
    markers = [line for line in main.lines if line.get_marker() == "^"]
    assert [list(line.get_xdata()) for line in markers] == [[1000]]


def test_model_swaps_and_fallback_periods_are_marked() -> None:
    assert fallback_spans([(0, 0), (10, 3), (20, 5), (30, 5), (40, 6)]) == [(0, 20), (30, 40)]
    fig = _figure(
        alerts=[{"index": 1300, "kind": "promoted", "detector": "m", "signal": "error"}],
        fallback_counts=[(0, 0), (400, 0), (600, 12), (800, 12)],
    )
    main = fig.axes[0]
    swaps = [line for line in main.lines if line.get_linestyle() == "-."]
    assert [list(line.get_xdata()) for line in swaps] == [[1300, 1300]]
    spans = [p for p in main.patches if p.get_facecolor()[:3] != (0.95, 0.95, 0.95)]
    xs = [tuple(round(x) for x in (p.get_x(), p.get_x() + p.get_width())) for p in spans]
    assert (400, 600) in xs
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "model swap (promoted)" in legend
    assert "fallback predicting" in legend
