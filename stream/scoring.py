"""Score drift alerts against known drift points: delay, false alarms, misses.

A true drift ``d`` is detected by the first ``drift`` alert at or after ``d``, before the next true
drift and within ``max_delay`` events. Later alerts inside that window repeat the same change and
are not counted against the detector; any other drift alert is a false alarm.

>>> score_detections([{"kind": "drift", "index": 5100}, {"kind": "drift", "index": 7000},
...                   {"kind": "warning", "index": 9000}], true_drifts=[5000, 10000], max_delay=1000)
{'detection_delay_mean': 100.0, 'detected': [5000], 'detection_delays': [100], 'false_alarms': 1, 'missed_drifts': 1}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def score_detections(
    alerts: Sequence[Mapping[str, Any]], true_drifts: Sequence[int], max_delay: int
) -> dict[str, Any]:
    drifts = sorted(true_drifts)
    windows = [
        (d, min(d + max_delay, drifts[i + 1] if i + 1 < len(drifts) else d + max_delay))
        for i, d in enumerate(drifts)
    ]
    first: dict[int, int] = {}
    false_alarms = 0
    for alert in sorted((a for a in alerts if a["kind"] == "drift"), key=lambda a: a["index"]):
        index = alert["index"]
        hit = next((d for d, end in windows if d <= index < end), None)
        if hit is None:
            false_alarms += 1
        else:
            first.setdefault(hit, index)
    delays = [first[d] - d for d in drifts if d in first]
    return {
        "detection_delay_mean": sum(delays) / len(delays) if delays else None,
        "detected": [d for d in drifts if d in first],
        "detection_delays": delays,
        "false_alarms": false_alarms,
        "missed_drifts": len(drifts) - len(delays),
    }
