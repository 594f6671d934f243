"""The slices in a backtest: a panel under ``report.png``'s alert strip and lines in its text summary.

Each slice (``region=east``) is one bar: its prequential metric over the labels scored in it,
with how many labels that was; a slice whose error drifted is red and says how many times. The
slices' drift records themselves are in the alert strip (rows ``slice:<feature>=<value>``), at
the index where they were confirmed.

>>> summary = {"metric_name": "accuracy", "slices": {"region": {
...     "west": {"events": 900, "labelled": 900, "metric": 0.93, "alerts": 0},
...     "east": {"events": 100, "labelled": 100, "metric": 0.41, "alerts": 1}}}}
>>> slice_rows(summary)
[('region=west', 0.93, 900, 0), ('region=east', 0.41, 100, 1)]
>>> slice_lines(summary)  # doctest: +NORMALIZE_WHITESPACE
['  slices (accuracy over labels; drifts): region: west 0.9300 (900), east 0.4100 (100) 1 drift']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Bars drawn at most (the busiest values of each feature first); the rest are in summary.json.
MAX_ROWS = 24
#: Values per feature in the text summary.
MAX_TEXT_VALUES = 8
_DRIFTED = "#d62728"
_CALM = "#1f77b4"

Row = tuple[str, float | None, int, int]


def slice_rows(summary: Mapping[str, Any] | None) -> list[Row]:
    """``(feature=value, metric, labels, drifts)`` per slice, busiest first within a feature,
    at most :data:`MAX_ROWS` in all (shared out between the features)."""
    slices = (summary or {}).get("slices") or {}
    if not slices:
        return []
    per_feature = max(1, MAX_ROWS // len(slices))
    return [
        (f"{feature}={value}", row["metric"], row["labelled"], row["alerts"])
        for feature, values in slices.items()
        for value, row in list(values.items())[:per_feature]
    ]


def slice_lines(summary: Mapping[str, Any]) -> list[str]:
    """One line per slicing feature for the text summary (nothing when there are none)."""
    slices = summary.get("slices") or {}
    if not slices:
        return []
    lines = []
    for feature, values in slices.items():
        shown = []
        for value, row in list(values.items())[:MAX_TEXT_VALUES]:
            metric = "n/a" if row["metric"] is None else f"{row['metric']:.4f}"
            drifts = f" {row['alerts']} drift{'s' * (row['alerts'] != 1)}" if row["alerts"] else ""
            shown.append(f"{value} {metric} ({row['labelled']:,}){drifts}")
        more = len(values) - MAX_TEXT_VALUES
        lines.append(f"{feature}: {', '.join(shown)}" + (f", ... {more} more" if more > 0 else ""))
    name = summary.get("metric_name") or "metric"
    head = f"  slices ({name} over labels; drifts): "
    return [head + lines[0], *(f"    {line}" for line in lines[1:])]


def report_axes(strip_height: float, summary: Mapping[str, Any] | None) -> tuple[Any, Any, Any]:
    """The report's figure with its metric and alert-strip axes (x shared), and under them the
    slices' panel, drawn, when the summary has slices."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = slice_rows(summary)
    panel_height = 0.8 + 0.22 * len(rows) if rows else 0.0
    fig = Figure(figsize=(12, 6.4 + panel_height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    if not rows:
        main, strip = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [4.6, strip_height]}
        )
        return fig, main, strip
    grid = fig.add_gridspec(3, 1, height_ratios=[4.6, strip_height, panel_height])
    main = fig.add_subplot(grid[0])
    strip = fig.add_subplot(grid[1], sharex=main)
    main.tick_params(labelbottom=False)
    _draw_slices(fig.add_subplot(grid[2]), rows, (summary or {}).get("metric_name"))
    return fig, main, strip


def _draw_slices(ax: Any, rows: list[Row], metric_name: str | None) -> None:
    names = [name for name, _, _, _ in rows]
    values = [metric if metric is not None else 0.0 for _, metric, _, _ in rows]
    colours = [_DRIFTED if drifts else _CALM for _, _, _, drifts in rows]
    positions = range(len(rows))
    ax.barh(positions, values, color=colours, alpha=0.8, height=0.7)
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    top = max(values, default=0.0) or 1.0
    ax.set_xlim(min(0.0, min(values, default=0.0)), top * 1.25)
    for position, (_, metric, labels, drifts) in zip(positions, rows, strict=True):
        text = "no label" if metric is None else f"{metric:.3f} over {labels:,} labels"
        if drifts:
            text += f", {drifts} drift{'s' * (drifts != 1)}"
        ax.text(top * 0.01 + max(0.0, values[position]), position, text, va="center", fontsize=8)
    ax.set_xlabel(f"{metric_name or 'metric'} per slice (red: its error drifted)")
    ax.tick_params(axis="y", length=0)
    ax.grid(True, axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
