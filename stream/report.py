"""The backtest report: one PNG with the metric over time, the true drifts and the alerts.

Layout (1200 x 640 px):

* top: the metric (solid) and the baseline's metric (dashed grey), true drifts as dashed black
  vertical lines, alerts on the ``error`` signal as red vertical lines (drift) and ticks along the
  top edge (orange for warning, green for recovered);
* bottom strip: one row per ``(signal, detector)`` pair with a tick for every alert, coloured by
  kind, so alerts on features or predictions are told apart from alerts on the error.

The first 5% of the event range (a fresh model warming up) does not set the metric's y range.

matplotlib is imported when a report is written, not when this module is imported: the CLI starts
faster and runs without it when no report is asked for.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "report.png"
>>> path = write_report(out, metric_name="accuracy", series=[(0, 0.5), (100, 0.9)],
...                     baseline_series=None, true_drifts=[50],
...                     alerts=[{"index": 60, "kind": "drift", "detector": "adwin",
...                              "signal": "error"}], title="demo")
>>> path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KIND_COLOURS = {
    "drift": "#d62728",
    "update": "#9467bd",
    "warning": "#ff7f0e",
    "recovered": "#2ca02c",
    "promoted": "#17becf",
}
_OTHER_KIND_COLOUR = "#7f7f7f"
_TRUE_DRIFT_STYLE: dict[str, Any] = {"color": "black", "linestyle": "--", "linewidth": 1.0}
#: Rows in the alert strip before the remaining signals are folded into one "other" row.
MAX_STRIP_ROWS = 10
_INSTALL_HINT = "the report needs matplotlib: pip install 'matplotlib>=3.8,<4'"


def _row_labels(alerts: Sequence[Mapping]) -> tuple[list[str], dict[tuple[str, str], int]]:
    """Rows of the alert strip: ``error`` signals first, then in order of first alert."""
    keys: list[tuple[str, str]] = []
    for alert in alerts:
        key = (str(alert.get("signal", "?")), str(alert.get("detector", "?")))
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda k: k[0] != "error")  # stable: keeps first-seen order otherwise
    shown, folded = keys[: MAX_STRIP_ROWS - 1], keys[MAX_STRIP_ROWS - 1 :]
    if len(folded) == 1:
        shown, folded = keys, []
    labels = [f"{signal} ({detector})" for signal, detector in shown]
    row_of = {key: i for i, key in enumerate(shown)}
    if folded:
        labels.append(f"{len(folded)} other signals")
        row_of.update(dict.fromkeys(folded, len(shown)))
    return labels, row_of


def _y_limits(*curves: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Y range of the curves ignoring the first 5% of the x range, where a fresh model warms up:
    a rolling accuracy that starts at 0 would otherwise squash every later drop into a few pixels.

    >>> _y_limits([(0, 0.0), (50, 0.8), (100, 0.9)])
    (0.795, 0.905)
    >>> _y_limits([(0, 1.0)]) is None
    True
    """
    points = [p for curve in curves for p in curve if math.isfinite(p[1])]
    if len(points) < 2:
        return None
    first, last = min(x for x, _ in points), max(x for x, _ in points)
    cut = first + 0.05 * (last - first)
    values = [y for x, y in points if x >= cut]
    low, high = min(values), max(values)
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    return low - pad, high + pad


def write_report(
    path: str | Path,
    *,
    metric_name: str,
    series: Sequence[tuple[int, float]],
    baseline_series: Sequence[tuple[int, float]] | None,
    true_drifts: Sequence[int],
    alerts: Sequence[Mapping],
    title: str,
) -> Path:
    """Draw the report as a PNG at ``path`` (parent folders are created) and return the path.

    ``series`` and ``baseline_series`` are ``(event index, metric value)`` pairs; each alert needs
    ``index`` and should have ``kind`` ("drift", "update", "recovered", "warning", "promoted"),
    ``detector`` and
    ``signal`` ("error", "prediction", "feature:<name>", "guard", ...).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None

    path = Path(path)
    labels, row_of = _row_labels(alerts)
    strip_height = 0.35 + 0.22 * max(len(labels), 1)
    fig = Figure(figsize=(12, 6.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    main, strip = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [4.6, strip_height]}
    )

    handles: list[Any] = []
    if series:
        xs, ys = zip(*series, strict=True)
        (line,) = main.plot(xs, ys, color="#1f77b4", linewidth=1.6, label=metric_name)
        handles.append(line)
    if baseline_series:
        xs, ys = zip(*baseline_series, strict=True)
        (line,) = main.plot(
            xs, ys, color="#555555", linestyle="--", linewidth=1.2, label=f"baseline {metric_name}"
        )
        handles.append(line)

    for ax in (main, strip):
        for index in true_drifts:
            ax.axvline(index, **_TRUE_DRIFT_STYLE, alpha=0.8, zorder=1)
    if true_drifts:
        handles.append(Line2D([], [], **_TRUE_DRIFT_STYLE, label="true drift"))

    # On the metric: each incident's opening (a drift record, any signal) and each promotion as a
    # full-height line; the error signal's other alerts as ticks on top.
    top = main.get_xaxis_transform()  # x in data units, y in axes fraction
    for alert in alerts:
        kind = alert.get("kind")
        colour = KIND_COLOURS.get(str(kind), _OTHER_KIND_COLOUR)
        if kind == "drift":
            main.axvline(alert["index"], color=colour, linewidth=1.2, alpha=0.75, zorder=2)
        elif kind == "promoted":
            main.axvline(alert["index"], color=colour, linewidth=1.4, linestyle="-.", zorder=2)
        elif alert.get("signal") == "error":
            main.plot(
                [alert["index"]], [0.97], marker="v", markersize=7, color=colour, transform=top
            )

    for row in range(len(labels)):
        strip.axhline(row, color="#dddddd", linewidth=0.8, zorder=0)
    for alert in alerts:
        key = (str(alert.get("signal", "?")), str(alert.get("detector", "?")))
        colour = KIND_COLOURS.get(str(alert.get("kind")), _OTHER_KIND_COLOUR)
        strip.plot([alert["index"]], [row_of[key]], marker="|", markersize=11, mew=2, color=colour)

    kinds_seen = {str(alert.get("kind")) for alert in alerts}
    for kind, colour in KIND_COLOURS.items():
        if kind in kinds_seen:
            handles.append(Line2D([], [], color=colour, marker="|", mew=2, label=f"{kind} alert"))
    if kinds_seen - KIND_COLOURS.keys():
        handles.append(
            Line2D([], [], color=_OTHER_KIND_COLOUR, marker="|", mew=2, label="other alert")
        )

    fig.suptitle(title, fontsize=13)
    main.set_ylabel(metric_name)
    limits = _y_limits(series, baseline_series or [])
    if limits is not None:
        main.set_ylim(*limits)
    for ax in (main, strip):
        ax.set_axisbelow(True)  # grid under the drift lines
    main.grid(True, color="#eeeeee")
    if handles:
        # Below the axes, not inside: a legend box would hide the dip after a drift.
        fig.legend(
            handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=9
        )

    strip.set_yticks(range(len(labels)), labels, fontsize=8)
    strip.set_ylim(len(labels) - 0.5 if labels else 0.5, -0.5)
    strip.set_xlabel("event index")
    strip.tick_params(axis="y", length=0)
    if not labels:
        strip.set_yticks([])
        strip.text(0.5, 0.5, "no alerts", ha="center", va="center", transform=strip.transAxes)
    if not series and not baseline_series and not true_drifts and not alerts:
        main.text(0.5, 0.5, "no data", ha="center", va="center", transform=main.transAxes)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
