"""What the dashboard shows, kept from the output records of one consumer group, in bounded memory.

Pure (no Kafka, no clock): the follower feeds records, the server asks for :meth:`DashboardState.view`.
Time is the records' own (Kafka timestamps, ms), cut in buckets of ``bucket_s`` seconds; each
partition keeps the last ``points`` buckets, and incidents, promotions, features, dead letters and
partitions are capped, so memory does not grow with the stream.

>>> state = DashboardState(bucket_s=1.0)
>>> metric = {"name": "accuracy", "value": 0.9, "rolling": 0.8, "labels": 10}
>>> state.add_prediction({"partition": 0, "offset": 9, "model_version": 1, "source": "model",
...                       "metric": metric}, 5_000)
>>> state.set_end_offsets({0: 15})
>>> p = state.view()["partitions"][0]
>>> p["events"], p["lag"], p["metric"], p["rolling"]
(10, 5, 0.9, 0.8)
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import Any

from driftline.live.dashboard.merged import merge_slices, newest_first, overall

#: Buckets kept per partition (10 minutes at one a second).
POINTS = 600
MAX_PARTITIONS = 1024
MAX_INCIDENTS = 100
MAX_PROMOTIONS = 50
MAX_FEATURES = 200
MAX_REASONS = 100
RECENT_DEAD_LETTERS = 10
DETAIL_CHARS = 200


class Partition:
    """One partition: its latest prediction and a bounded series of time buckets."""

    def __init__(self, points: int) -> None:
        self.offset = -1  # highest events offset predicted (replays do not count twice)
        self.rejected_offset = -1  # highest events offset dead-lettered
        self.predictions = 0  # records seen by the dashboard, duplicates included
        self.fallback = 0
        self.model_version: int | None = None
        self.metric: dict[str, Any] | None = None
        self.end: int | None = None  # end offset of the events partition
        self.incidents = 0
        self.promotions = 0
        self.warnings = 0
        self.dead_letters = 0
        self.snapshot: dict[str, Any] | None = None
        #: ``{feature: {value: {events, labelled, metric, alerts}}}`` of the newest snapshot.
        self.slices: dict[str, Any] = {}
        self.worker: str | None = None  # the group member it is assigned to
        # [bucket start (s), metric value, rolling, events in the bucket, labels scored, offset]
        self.series: deque[list[Any]] = deque(maxlen=points)

    def add(self, record: dict[str, Any], bucket: float | None) -> None:
        self.predictions += 1
        if record.get("source") == "fallback":
            self.fallback += 1
        offset = record.get("offset")
        new_events = 1
        if isinstance(offset, int):
            new_events = max(0, offset - self.offset) if self.offset >= 0 else 1
            if offset <= self.offset:  # a replay (at-least-once): not news
                return
            self.offset = offset
        self.model_version = record.get("model_version", self.model_version)
        metric = record.get("metric")
        if isinstance(metric, dict):
            self.metric = metric
        if bucket is None:
            return
        metric = self.metric or {}
        value, rolling, labels = metric.get("value"), metric.get("rolling"), metric.get("labels", 0)
        series = self.series
        if series and series[-1][0] == bucket:
            last = series[-1]
            last[1:] = [value, rolling, last[3] + new_events, labels, self.offset]
        elif not series or bucket > series[-1][0]:
            series.append([bucket, value, rolling, new_events, labels, self.offset])
        # a record older than the newest bucket (several producers' clocks) joins no bucket

    def lag(self) -> int | None:
        if self.end is None:
            return None
        return max(0, self.end - self.events())

    def events(self) -> int:
        """Events processed: the offset of the newest one predicted or rejected, plus one."""
        return max(self.offset, self.rejected_offset) + 1

    def view(self) -> dict[str, Any]:
        metric = self.metric or {}
        return {
            "events": self.events(),
            "predictions": self.predictions,
            "fallback_share": self.fallback / self.predictions if self.predictions else None,
            "model_version": self.model_version,
            "metric": metric.get("value"),
            "rolling": metric.get("rolling"),
            "labels": metric.get("labels", 0),
            "lag": self.lag(),
            "end_offset": self.end,
            "incidents": self.incidents,
            "promotions": self.promotions,
            "warnings": self.warnings,
            "dead_letters": self.dead_letters,
            "snapshot": self.snapshot,
            "worker": self.worker,
            "series": [point[:4] for point in self.series],
        }


class DashboardState:
    """Everything the page shows, fed one output record at a time."""

    def __init__(self, *, bucket_s: float = 1.0, points: int = POINTS) -> None:
        if bucket_s <= 0 or points < 1:
            raise ValueError("bucket_s must be > 0 and points >= 1")
        self.bucket_s = bucket_s
        self.points = points
        self.partitions: dict[int, Partition] = {}
        self.metric_name: str | None = None
        self.incidents: OrderedDict[tuple[int, str], dict[str, Any]] = OrderedDict()
        self.promotions: deque[dict[str, Any]] = deque(maxlen=MAX_PROMOTIONS)
        self.features: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.alerts_by_kind: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.recent_dead_letters: deque[dict[str, Any]] = deque(maxlen=RECENT_DEAD_LETTERS)
        self.ignored = 0  # records that were not what their topic carries
        self.workers: list[dict[str, Any]] = []
        self.group_state: str | None = None

    def _partition(self, record: Any) -> Partition | None:
        p = record.get("partition") if isinstance(record, dict) else None
        if not isinstance(p, int) or isinstance(p, bool) or p < 0:
            self.ignored += 1
            return None
        part = self.partitions.get(p)
        if part is None:
            if len(self.partitions) >= MAX_PARTITIONS:
                self.ignored += 1
                return None
            part = self.partitions[p] = Partition(self.points)
        return part

    def _bucket(self, ts_ms: float | None) -> float | None:
        if ts_ms is None:
            return None
        return (ts_ms / 1000.0 // self.bucket_s) * self.bucket_s

    def add_prediction(self, record: Any, ts_ms: float | None) -> None:
        part = self._partition(record)
        if part is None:
            return
        part.add(record, self._bucket(ts_ms))
        metric = record.get("metric")
        if isinstance(metric, dict) and isinstance(metric.get("name"), str):
            self.metric_name = metric["name"]

    def add_alert(self, record: Any, ts_ms: float | None) -> None:
        part = self._partition(record)
        if part is None:
            return
        kind = str(record.get("kind"))
        self.alerts_by_kind[kind] += 1
        # The record's Kafka time: the axis of the charts (an alert's own ``ts`` is event time,
        # which may be any date: it is kept beside it).
        when = ts_ms
        if kind == "warning":
            part.warnings += 1
        elif kind == "promoted":
            part.promotions += 1
            self.promotions.append(_promotion(record, when))
        if kind in ("drift", "update", "recovered") and record.get("incident"):
            self._incident(part, record, kind, when)

    def _incident(self, part: Partition, record: dict[str, Any], kind: str, when: Any) -> None:
        key = (record["partition"], str(record["incident"]))
        incident = self.incidents.get(key)
        if incident is None:
            part.incidents += 1
            incident = self.incidents[key] = {
                "id": key[1],
                "partition": key[0],
                "opened_ts": when,
                "event_ts": _number(record.get("ts")),
                "opened_index": record.get("index"),
                "status": "open",
                "closed_ts": None,
                "signals": [],
                "actions": [],
            }
            while len(self.incidents) > MAX_INCIDENTS:
                self.incidents.popitem(last=False)
        signals = record.get("signals")
        if isinstance(signals, list):
            # One line per signal: a later detection of the same signal replaces the earlier.
            latest = {}
            for s in signals[:100]:
                if isinstance(s, dict):
                    latest[str(s.get("signal"))] = _signal(s)
            incident["signals"] = list(latest.values())[:20]
            for s in incident["signals"]:
                if s["signal"].startswith("feature:"):
                    self._feature(s, key)
        action = record.get("action")
        actions = incident["actions"]
        if kind != "recovered" and action not in (None, "none", *actions) and len(actions) < 10:
            actions.append(str(action))
        if kind == "recovered":
            incident["status"], incident["closed_ts"] = "recovered", when

    def _feature(self, signal: dict[str, Any], incident: tuple[int, str]) -> None:
        name = signal["signal"].removeprefix("feature:")
        feature = self.features.get(name)
        if feature is None:
            feature = self.features[name] = {"feature": name, "incidents": [], "effect": None}
            while len(self.features) > MAX_FEATURES:
                self.features.popitem(last=False)
        label = f"p{incident[0]}:{incident[1]}"
        if label not in feature["incidents"]:
            feature["incidents"] = [*feature["incidents"], label][-10:]
        feature.update(effect=signal["effect"], before=signal["before"], after=signal["after"])
        self.features.move_to_end(name)

    def add_dead_letter(self, record: Any, ts_ms: float | None) -> None:
        if not isinstance(record, dict):
            self.ignored += 1
            return
        part = self._partition(record) if "partition" in record else None
        if part is not None:
            part.dead_letters += 1
            position = record.get("position")
            if record.get("source") == "events" and isinstance(position, int):
                # A rejected event is processed too: it gets no prediction, but no lag either.
                part.rejected_offset = max(part.rejected_offset, position)
        reason = str(record.get("reason"))[:80]
        if reason in self.dead_letter_reasons or len(self.dead_letter_reasons) < MAX_REASONS:
            self.dead_letter_reasons[reason] += 1
        self.recent_dead_letters.append(
            {
                "ts": ts_ms,
                "reason": reason,
                "detail": str(record.get("detail", ""))[:DETAIL_CHARS],
                "partition": record.get("partition"),
                "source": record.get("source"),
                "position": record.get("position"),
            }
        )

    def add_snapshot_header(self, header: Any, ts_ms: float | None) -> None:
        """A snapshot's lineage header (read, NOT verified: shown, never acted on)."""
        part = self._partition(header)
        if part is None:
            return
        keep = ("sequence", "model_version", "metric", "labelled", "watermark", "created_at")
        # The newest by its signed sequence, not by reading order: a partition's snapshots rotate
        # over keys that hash to different partitions of the snapshot topic.
        shown = part.snapshot
        if shown is not None and _sequence(header) <= _sequence(shown):
            return
        part.snapshot = {name: header.get(name) for name in keep} | {"ts": ts_ms}
        slices = header.get("slices")
        if isinstance(slices, dict):
            part.slices = slices

    def set_end_offsets(self, ends: dict[int, int]) -> None:
        """End offsets of the events topic: lag = end - (offset predicted + 1)."""
        for p, end in ends.items():
            part = self._partition({"partition": p})
            if part is not None:
                part.end = end

    def set_workers(self, workers: list[dict[str, Any]], group_state: str) -> None:
        """The members of the workers' group: ``worker`` (its address), ``partitions``."""
        self.workers, self.group_state = workers[:MAX_PARTITIONS], group_state
        owner = {p: w["worker"] for w in self.workers for p in w.get("partitions", ())}
        for p, part in self.partitions.items():
            part.worker = owner.get(p)

    def view(self) -> dict[str, Any]:
        """A JSON-able picture of everything, newest incidents and promotions first."""
        partitions = {p: part.view() for p, part in sorted(self.partitions.items())}
        return {
            "metric_name": self.metric_name,
            "bucket_s": self.bucket_s,
            "overall": overall(self.partitions.values()),
            "partitions": partitions,
            # Newest first by record time: at start the topics are read a partition at a time.
            "incidents": sorted(self.incidents.values(), key=newest_first("opened_ts")),
            "promotions": sorted(self.promotions, key=newest_first("ts")),
            "features": sorted(self.features.values(), key=lambda f: -abs(f.get("effect") or 0.0)),
            "slices": merge_slices(part.slices for part in self.partitions.values()),
            "alerts_by_kind": dict(self.alerts_by_kind),
            "dead_letters": dict(self.dead_letter_reasons.most_common()),
            "recent_dead_letters": list(reversed(self.recent_dead_letters)),
            "ignored": self.ignored,
            "workers": self.workers,
            "group_state": self.group_state,
            # Not in the output records live: a backtest (driftline backtest) reports both.
            "baselines": {"no_adaptation": None, "no_change": None},
        }


def _signal(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "signal": str(s.get("signal")),
        "detector": s.get("detector"),
        "effect": _number(s.get("effect")),
        "before": _number(s.get("before")),
        "after": _number(s.get("after")),
        "index": s.get("index"),
    }


def _promotion(record: dict[str, Any], when: Any) -> dict[str, Any]:
    evidence = _mapping(record.get("evidence"))
    champion, challenger = _mapping(evidence.get("champion")), _mapping(evidence.get("challenger"))
    return {
        "ts": when,
        "partition": record.get("partition"),
        "incident": record.get("incident"),
        "from_version": record.get("model_version"),
        "to_version": record.get("new_model_version"),
        "p_value": _number(evidence.get("p_value")),
        "champion": {k: champion.get(k) for k in ("name", "metric", "window_loss")},
        "challenger": {k: challenger.get(k) for k in ("name", "metric", "window_loss", "labels")},
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sequence(header: dict[str, Any]) -> int:
    value = header.get("sequence")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
