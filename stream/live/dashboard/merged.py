"""What the page shows of several partitions at once: the overall metric and series, the slices
merged across partitions, newest-first ordering. Pure functions of :class:`~driftline.live.dashboard.state.Partition` data."""

from __future__ import annotations

from typing import Any

#: Slices shown: a worker keeps at most slices.max_values per feature; the page keeps fewer.
MAX_SLICE_FEATURES = 8
MAX_SLICE_VALUES = 50


def overall(partitions: Any) -> dict[str, Any]:
    """Every partition at once: events and lag summed, the metric label-weighted (exact for a
    mean such as accuracy or MAE), and a series over the union of the partitions' buckets."""
    parts = list(partitions)
    lags = [lag for lag in (p.lag() for p in parts) if lag is not None]
    latest = [p.metric or {} for p in parts]
    # A bucket where a partition had no record carries its last point forward.
    points = sorted((point[0], i, point) for i, p in enumerate(parts) for point in p.series)
    last: dict[int, list[Any]] = {}
    series: list[list[Any]] = []
    for k, (t, i, point) in enumerate(points):
        last[i] = point
        if series and series[-1][0] == t:
            series[-1][3] += point[3]
        else:
            series.append([t, None, None, point[3]])
        if k + 1 == len(points) or points[k + 1][0] != t:  # the bucket is complete
            now = last.values()
            series[-1][1] = weighted([(q[4], q[1]) for q in now])
            series[-1][2] = weighted([(1 if q[4] else 0, q[2]) for q in now])
    return {
        "events": sum(p.events() for p in parts),
        "predictions": sum(p.predictions for p in parts),
        "labels": sum(m.get("labels", 0) for m in latest),
        "metric": weighted([(m.get("labels", 0), m.get("value")) for m in latest]),
        "rolling": weighted([(1 if m.get("labels") else 0, m.get("rolling")) for m in latest]),
        "lag": sum(lags) if lags else None,
        "series": series,
    }


def merge_slices(per_partition: Any) -> dict[str, list[dict[str, Any]]]:
    """The partitions' slices together: ``{feature: [{value, events, labelled, metric,
    alerts}]}``, busiest first; counts summed, the metric label-weighted.

    >>> a = {"region": {"east": {"events": 10, "labelled": 10, "metric": 0.5, "alerts": 1}}}
    >>> b = {"region": {"east": {"events": 30, "labelled": 30, "metric": 0.9, "alerts": 0}}}
    >>> merge_slices([a, b])["region"]
    [{'value': 'east', 'events': 40, 'labelled': 40, 'metric': 0.8, 'alerts': 1}]
    """
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    weights: dict[tuple[str, str], list[tuple[int, float | None]]] = {}
    for slices in per_partition:
        for feature, values in slices.items():
            if not isinstance(values, dict):
                continue
            for value, cell in list(values.items())[:MAX_SLICE_VALUES]:
                row = merged.setdefault(feature, {}).setdefault(
                    value, {"value": value, "events": 0, "labelled": 0, "metric": None, "alerts": 0}
                )
                for name in ("events", "labelled", "alerts"):
                    row[name] += int(cell.get(name) or 0)
                weights.setdefault((feature, value), []).append(
                    (int(cell.get("labelled") or 0), cell.get("metric"))
                )
    for (feature, value), pairs in weights.items():
        metric = weighted(pairs)
        merged[feature][value]["metric"] = None if metric is None else round(metric, 12)
    return {
        feature: sorted(rows.values(), key=lambda r: (-r["events"], str(r["value"])))
        for feature, rows in list(merged.items())[:MAX_SLICE_FEATURES]
    }


def newest_first(field: str) -> Any:
    return lambda item: -(item.get(field) or 0)


def weighted(pairs: list[tuple[int, float | None]]) -> float | None:
    known = [(n, v) for n, v in pairs if v is not None and n]
    total = sum(n for n, _ in known)
    return sum(n * v for n, v in known) / total if total else None
