"""The backtest report: one PNG with the metric over time, the true drifts and the alerts.

Layout (1200 x 640 px):

* top: the metric (solid) and the baseline's metric (dashed grey), true drifts as dashed black
  vertical lines, alerts on the ``error`` signal as red vertical lines (drift) and ticks along the
  top edge (orange for warning, green for recovered);
* bottom strip: one row per ``(signal, detector)`` pair with a tick for every alert, coloured by
  kind, so alerts on features or predictions are told apart from alerts on the error.

The first 5% of the event range (a fresh model warming up) is not plotted and does not set the
metric's y range. True drifts are dashed black lines drawn over the alert lines, with a triangle on
the bottom edge, so an alert at the same index does not hide them. Model swaps (promotions) are
dash-dot lines, periods with fallback predictions are shaded, the y label says whether lower or
higher is better, and the headline numbers are a line under the title.

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

from driftline.offline.slice_report import report_axes

KIND_COLOURS = {
    "drift": "#d62728",
    "update": "#9467bd",
    "warning": "#ff7f0e",
    "recovered": "#2ca02c",
    "promoted": "#17becf",
}
_OTHER_KIND_COLOUR = "#7f7f7f"
_TRUE_DRIFT_STYLE: dict[str, Any] = {"color": "black", "linestyle": "--", "linewidth": 1.3}
_FALLBACK_COLOUR = "#ffbb78"
#: Share of the event range a fresh model warms up in: neither plotted nor used for the y range.
WARMUP_SHARE = 0.05
#: Metrics where a smaller value is better (matched on the words of the metric's name).
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "error", "loss", "log_loss", "logloss"})
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


def lower_is_better(metric_name: str) -> bool:
    """Whether a smaller value of the metric is better: an error, not a score.

    >>> lower_is_better("rolling mae (500 events)"), lower_is_better("rolling accuracy")
    (True, False)
    """
    words = metric_name.lower().replace("(", " ").replace(")", " ").split()
    return any(word in LOWER_IS_BETTER for word in words)


def y_label(metric_name: str) -> str:
    """The metric's axis label with the direction that is better.

    >>> y_label("rolling MAE")
    'rolling MAE (lower is better)'
    """
    better = "lower" if lower_is_better(metric_name) else "higher"
    return f"{metric_name} ({better} is better)"


def warmup_cut(*curves: Sequence[tuple[int, float]]) -> float | None:
    """The first event index plotted: the first ``WARMUP_SHARE`` of the x range is a fresh model
    warming up, whose rolling metric would be a spike at the start.

    >>> warmup_cut([(0, 0.0), (100, 0.9)])
    5.0
    >>> warmup_cut([]) is None
    True
    """
    xs = [x for curve in curves for x, _ in curve]
    if not xs:
        return None
    first, last = min(xs), max(xs)
    return first + WARMUP_SHARE * (last - first)


def after_warmup(curve: Sequence[tuple[int, float]], cut: float | None) -> list[tuple[int, float]]:
    """The points of ``curve`` that are plotted: those at or after the warm-up cut."""
    return [p for p in curve if cut is None or p[0] >= cut]


def fallback_spans(counts: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Event ranges where the fallback predicted, from ``(event index, cumulative fallback
    predictions)`` samples: a span for each run of samples where the count grew.

    >>> fallback_spans([(0, 0), (10, 3), (20, 5), (30, 5), (40, 6)])
    [(0, 20), (30, 40)]
    """
    spans: list[tuple[int, int]] = []
    previous_x, previous_n = None, 0
    for x, n in counts:
        start = previous_x if previous_x is not None else x
        if n > previous_n:
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], x)
            else:
                spans.append((start, x))
        previous_x, previous_n = x, n
    return spans


def resolved_model_name(name: str, model: Any) -> str:
    """The model actually built: ``name`` plus the class of the estimator ("auto" alone says
    nothing), the last step of a pipeline.

    >>> class LogisticRegression: ...
    >>> resolved_model_name("auto", LogisticRegression())
    'LogisticRegression'
    >>> resolved_model_name("hoeffding_tree", None)
    'hoeffding_tree'
    """
    if model is None:
        return name
    steps = getattr(model, "steps", None)
    if isinstance(steps, Mapping) and steps:
        model = list(steps.values())[-1]
    cls = type(model).__name__
    inner = getattr(model, "classifier", None)  # a multiclass wrapper such as OneVsRest
    if inner is not None and cls.startswith("OneVsRest"):
        cls = f"{type(inner).__name__} (one-vs-rest)"
    if name == "auto" or ":" in name:
        return cls
    return name if cls.lower() == name.replace("_", "").lower() else f"{name} ({cls})"


def headline_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """The numbers of a backtest summary worth reading on the picture.

    >>> headline_lines({"metric_name": "mae", "metric": 1.5, "baseline_metric": 2.0,
    ...                 "true_drifts": [5], "detected": [5], "detection_delay_mean": 12.0,
    ...                 "false_alarms": 0, "promotions": 1, "predicted_by": {"fallback": 3}})
    ['mae 1.5 (no adaptation 2)', 'drifts found 1/1, mean delay 12 events, false alarms 0', 'promotions 1, fallback predictions 3']
    """
    if not summary:
        return []
    lines = []
    name = summary.get("metric_name") or "metric"
    metric, base = summary.get("metric"), summary.get("baseline_metric")
    if metric is not None:
        line = f"{name} {metric:.4g}"
        if base is not None:
            line += f" (no adaptation {base:.4g})"
        lines.append(line)
    drifts = summary.get("true_drifts") or []
    if drifts:
        delay = summary.get("detection_delay_mean")
        delay_text = f", mean delay {delay:.0f} events" if delay is not None else ""
        lines.append(
            f"drifts found {len(summary.get('detected') or [])}/{len(drifts)}{delay_text}, "
            f"false alarms {summary.get('false_alarms', 0)}"
        )
    fallback = (summary.get("predicted_by") or {}).get("fallback", 0)
    lines.append(f"promotions {summary.get('promotions', 0)}, fallback predictions {fallback}")
    return lines


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
    fallback_counts: Sequence[tuple[int, int]] = (),
    summary: Mapping[str, Any] | None = None,
) -> Path:
    """Draw the report as a PNG at ``path`` (parent folders are created) and return the path.

    The arguments are those of :func:`build_figure`.
    """
    fig = build_figure(
        metric_name=metric_name,
        series=series,
        baseline_series=baseline_series,
        true_drifts=true_drifts,
        alerts=alerts,
        title=title,
        fallback_counts=fallback_counts,
        summary=summary,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def build_figure(
    *,
    metric_name: str,
    series: Sequence[tuple[int, float]],
    baseline_series: Sequence[tuple[int, float]] | None,
    true_drifts: Sequence[int],
    alerts: Sequence[Mapping],
    title: str,
    fallback_counts: Sequence[tuple[int, int]] = (),
    summary: Mapping[str, Any] | None = None,
) -> Any:
    """The report's matplotlib ``Figure`` (axes: the metric, then the alert strip).

    ``series`` and ``baseline_series`` are ``(event index, metric value)`` pairs; each alert needs
    ``index`` and should have ``kind`` ("drift", "update", "recovered", "warning", "promoted"),
    ``detector`` and
    ``signal`` ("error", "prediction", "feature:<name>", "guard", ...). ``fallback_counts`` are
    ``(event index, cumulative predictions by the fallback)`` samples, shaded where they grow;
    ``summary`` (a backtest summary) gives the headline numbers.
    """
    try:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None

    labels, row_of = _row_labels(alerts)
    strip_height = 0.35 + 0.22 * max(len(labels), 1)
    # The figure and its axes, with the slices' panel under them when there are slices.
    fig, main, strip = report_axes(strip_height, summary)

    cut = warmup_cut(series, baseline_series or [])
    shown = after_warmup(series, cut)
    shown_baseline = after_warmup(baseline_series or [], cut)
    handles: list[Any] = []
    if shown:
        xs, ys = zip(*shown, strict=True)
        (line,) = main.plot(xs, ys, color="#1f77b4", linewidth=1.6, label=metric_name, zorder=5)
        handles.append(line)
    if shown_baseline:
        xs, ys = zip(*shown_baseline, strict=True)
        (line,) = main.plot(
            xs,
            ys,
            color="#555555",
            linestyle="--",
            linewidth=1.2,
            label=f"baseline {metric_name}",
            zorder=4,
        )
        handles.append(line)

    spans = fallback_spans(fallback_counts)
    xs_all = [x for curve in (series, baseline_series or [], fallback_counts) for x, _ in curve]
    min_width = 0.006 * (max(xs_all) - min(xs_all)) if xs_all else 0.0
    for start, end in spans:  # at least a few pixels wide: a short fallback run stays visible
        main.axvspan(
            start,
            max(end, start + min_width),
            color=_FALLBACK_COLOUR,
            alpha=0.6,
            linewidth=0,
            zorder=1,  # over the warm-up shading, under the curves
        )
    if spans:
        handles.append(Patch(color=_FALLBACK_COLOUR, alpha=0.6, label="fallback predicting"))

    # True drifts above the alert lines (zorder 3 > 2), with a triangle on the bottom edge: an
    # alert at the same index leaves them visible.
    bottom = main.get_xaxis_transform()  # x in data units, y in axes fraction
    for ax in (main, strip):
        for index in true_drifts:
            ax.axvline(index, **_TRUE_DRIFT_STYLE, alpha=0.9, zorder=3)
    for index in true_drifts:
        main.plot(
            [index], [0.0], marker="^", markersize=9, color="black", transform=bottom,
            clip_on=False, zorder=6,
        )  # fmt: skip
    if true_drifts:
        handles.append(
            Line2D([], [], **_TRUE_DRIFT_STYLE, marker="^", markersize=7, label="true drift")
        )

    # On the metric: each incident's opening (a drift record, any signal) and each model swap
    # (promotion) as a full-height line; the error signal's other alerts as ticks on top.
    top = bottom
    for alert in alerts:
        kind = alert.get("kind")
        colour = KIND_COLOURS.get(str(kind), _OTHER_KIND_COLOUR)
        if kind == "drift":
            main.axvline(alert["index"], color=colour, linewidth=1.6, alpha=0.6, zorder=2)
        elif kind == "promoted":
            main.axvline(alert["index"], color=colour, linewidth=1.6, linestyle="-.", zorder=2)
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
            label = "model swap (promoted)" if kind == "promoted" else f"{kind} alert"
            handles.append(Line2D([], [], color=colour, marker="|", mew=2, label=label))
    if kinds_seen - KIND_COLOURS.keys():
        handles.append(
            Line2D([], [], color=_OTHER_KIND_COLOUR, marker="|", mew=2, label="other alert")
        )

    fig.suptitle(title, fontsize=13)
    main.set_ylabel(y_label(metric_name))
    limits = _y_limits(series, baseline_series or [])
    if limits is not None:
        main.set_ylim(*limits)
    if cut is not None and (series or baseline_series):
        first = min(x for curve in (series, baseline_series or []) for x, _ in curve)
        main.set_xlim(left=first)
        if cut > first:
            main.axvspan(first, cut, color="#f2f2f2", linewidth=0, zorder=0)
            main.text(
                first + (cut - first) / 2, 0.5, "warm-up", transform=bottom, rotation=90,
                ha="center", va="center", fontsize=8, color="#888888",
            )  # fmt: skip
    lines = headline_lines(summary)
    if lines:  # under the title, not on the axes: a box there would hide part of the curve
        main.set_title("   |   ".join(lines), fontsize=9.5, color="#333333")
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
    return fig
