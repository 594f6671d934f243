"""The dashboard without a broker: its state fed records by hand, and its web app in memory."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from driftline.live.dashboard import state as state_module
from driftline.live.dashboard.server import make_app
from driftline.live.dashboard.state import DashboardState


def prediction(p: int, offset: int, value: float | None, labels: int, **extra: Any) -> dict:
    metric = (
        None
        if value is None
        else {"name": "accuracy", "value": value, "rolling": value, "labels": labels}
    )
    return {
        "partition": p,
        "offset": offset,
        "model_version": 1,
        "source": "model",
        "metric": metric,
        **extra,
    }


def incident_record(kind: str, p: int, incident: str, signals: list[dict]) -> dict:
    return {
        "kind": kind,
        "partition": p,
        "incident": incident,
        "index": 10,
        "action": "promotion",
        "signals": signals,
        "ts": 1,
    }


ERROR = {"signal": "error", "detector": "adwin", "effect": 1.2, "before": 0.06, "after": 0.35}
SALARY = {
    "signal": "feature:salary",
    "detector": "adwin",
    "effect": -0.8,
    "before": 9e4,
    "after": 6e4,
}


def test_series_buckets_by_record_time_and_counts_each_offset_once() -> None:
    state = DashboardState(bucket_s=1.0)
    for offset in range(10):
        state.add_prediction(prediction(0, offset, 0.5, offset), 1_000 + 100 * offset)
    # A replay after a restart (at-least-once): the same offsets again, later.
    for offset in range(5, 10):
        state.add_prediction(prediction(0, offset, 0.5, offset), 3_000)
    part = state.view()["partitions"][0]
    assert part["events"] == 10 and part["predictions"] == 15
    assert [(t, events) for t, _, _, events in part["series"]] == [(1.0, 10)]


def test_overall_metric_is_weighted_by_labels_and_lag_uses_the_events_end() -> None:
    state = DashboardState()
    state.add_prediction(prediction(0, 99, 0.9, 100), 1_000)
    state.add_prediction(prediction(1, 299, 0.5, 300), 1_000)
    state.set_end_offsets({0: 110, 1: 300})
    overall = state.view()["overall"]
    assert overall["metric"] == pytest.approx((0.9 * 100 + 0.5 * 300) / 400)
    assert overall["events"] == 400 and overall["lag"] == 10 and overall["labels"] == 400


def test_a_partition_without_a_point_in_a_bucket_carries_its_last_value_forward() -> None:
    state = DashboardState()
    state.add_prediction(prediction(0, 0, 1.0, 10), 1_000)
    state.add_prediction(prediction(1, 0, 0.0, 10), 1_000)
    state.add_prediction(prediction(0, 1, 1.0, 10), 2_000)  # partition 1 is quiet at t=2
    series = state.view()["overall"]["series"]
    assert [(t, value, events) for t, value, _, events in series] == [(1.0, 0.5, 2), (2.0, 0.5, 1)]


def test_an_incident_gathers_its_signals_features_and_recovery() -> None:
    state = DashboardState()
    state.add_alert(incident_record("drift", 0, "p0-10", [ERROR]), 5_000)
    state.add_alert(incident_record("update", 0, "p0-10", [ERROR, SALARY]), 6_000)
    state.add_alert(
        {**incident_record("recovered", 0, "p0-10", [ERROR, SALARY]), "action": "none"}, 9_000
    )
    view = state.view()
    (incident,) = view["incidents"]
    assert incident["id"] == "p0-10" and incident["status"] == "recovered"
    assert (incident["opened_ts"], incident["closed_ts"]) == (5_000, 9_000)
    assert [s["signal"] for s in incident["signals"]] == ["error", "feature:salary"]
    assert incident["actions"] == ["promotion"]
    assert view["partitions"][0]["incidents"] == 1
    (feature,) = view["features"]
    assert (feature["feature"], feature["effect"], feature["incidents"]) == (
        "salary",
        -0.8,
        ["p0:p0-10"],
    )


def test_promotion_shows_champion_against_challenger() -> None:
    state = DashboardState()
    evidence = {
        "p_value": 1e-5,
        "champion": {"name": "auto", "metric": 0.91, "window_loss": 0.34},
        "challenger": {"name": "auto", "metric": 0.83, "window_loss": 0.16, "labels": 201},
    }
    state.add_alert(
        {
            "kind": "promoted",
            "partition": 2,
            "model_version": 1,
            "new_model_version": 2,
            "evidence": evidence,
        },
        7_000,
    )
    (promotion,) = state.view()["promotions"]
    assert (promotion["from_version"], promotion["to_version"]) == (1, 2)
    assert promotion["champion"]["window_loss"] == 0.34
    assert promotion["challenger"]["window_loss"] == 0.16
    assert state.view()["partitions"][2]["promotions"] == 1


def test_dead_letters_count_by_reason_and_close_the_lag_of_rejected_events() -> None:
    state = DashboardState()
    state.add_prediction(prediction(0, 4, 1.0, 5), 1_000)
    for position in (5, 6):
        state.add_dead_letter(
            {
                "reason": "not_json",
                "detail": "x" * 1000,
                "partition": 0,
                "source": "events",
                "position": position,
            },
            2_000,
        )
    state.add_dead_letter(
        {"reason": "label_unmatched", "partition": 0, "source": "labels", "position": 99}, 2_000
    )
    state.set_end_offsets({0: 7})
    view = state.view()
    assert view["dead_letters"] == {"not_json": 2, "label_unmatched": 1}
    assert view["partitions"][0]["lag"] == 0 and view["partitions"][0]["events"] == 7
    assert len(view["recent_dead_letters"][-1]["detail"]) == state_module.DETAIL_CHARS  # oldest


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "MAX_INCIDENTS", 3)
    state = DashboardState(points=5)
    for offset in range(100):
        state.add_prediction(prediction(0, offset, 0.5, offset), 1_000 * offset)
        state.add_alert(incident_record("drift", 0, f"p0-{offset}", [ERROR]), 1_000 * offset)
    view = state.view()
    assert len(view["partitions"][0]["series"]) == 5
    assert [i["id"] for i in view["incidents"]] == ["p0-99", "p0-98", "p0-97"]


@pytest.mark.parametrize(
    "record", [None, [], "text", {"partition": "0"}, {"partition": -1}, {"partition": True}]
)
def test_records_that_are_not_what_the_topic_carries_are_counted_not_fatal(record: Any) -> None:
    state = DashboardState()
    state.add_prediction(record, 1_000)
    state.add_alert(record, 1_000)
    state.add_snapshot_header(record, 1_000)
    assert state.view()["partitions"] == {} and state.view()["ignored"] >= 1


def test_snapshot_header_is_shown_per_partition() -> None:
    state = DashboardState()
    header = {"partition": 1, "sequence": 3, "model_version": 2, "metric": 0.9, "watermark": 999}
    state.add_snapshot_header(header, 4_000)
    snap = state.view()["partitions"][1]["snapshot"]
    assert (snap["sequence"], snap["model_version"], snap["ts"]) == (3, 2, 4_000)


def test_the_newest_snapshot_is_shown_whatever_order_it_is_read_in() -> None:
    # A partition's snapshot keys rotate over slots that hash to different topic partitions.
    state = DashboardState()
    newer = {"partition": 1, "sequence": 2, "model_version": 1, "slices": {"r": {}}}
    cell = {"events": 1, "labelled": 1, "metric": 0.5, "alerts": 0}
    older = {"partition": 1, "sequence": 1, "model_version": 0, "slices": {"old": {"a": cell}}}
    state.add_snapshot_header(newer, 2_000)
    state.add_snapshot_header(older, 3_000)
    snap = state.view()["partitions"][1]["snapshot"]
    assert (snap["sequence"], snap["model_version"]) == (2, 1)
    assert "old" not in state.view()["slices"]


def test_slices_come_from_each_partitions_newest_snapshot_header() -> None:
    # The engine's own header (what the worker publishes), for two partitions of one group.
    from driftline.learners.config import LearningConfig, SlicesConfig
    from driftline.learners.engine import Engine

    config = LearningConfig(slices=SlicesConfig(by=("region",)))
    state = DashboardState()
    for p, east_share in ((0, 2), (1, 3)):
        engine = Engine(config, partition=p)
        for i in range(60):
            region = "east" if i % east_share == 0 else "west"
            engine.process({"id": i, "x": {"a": float(i % 5), "region": region}, "y": i % 2 == 0})
        state.add_snapshot_header(engine.header(), 5_000)
    rows = {r["value"]: r for r in state.view()["slices"]["region"]}
    assert rows["east"]["events"] == 30 + 20 and rows["west"]["events"] == 30 + 40
    assert rows["east"]["labelled"] == 50 and rows["west"]["labelled"] + 50 == 120
    assert 0.0 <= rows["east"]["metric"] <= 1.0
    assert [r["value"] for r in state.view()["slices"]["region"]] == ["west", "east"]


def test_web_app_serves_the_page_its_assets_and_the_state() -> None:
    state = DashboardState()
    state.add_prediction(prediction(0, 41, 0.875, 40), 1_000)

    async def fetch() -> tuple[str, int, int, dict]:
        app = make_app(state, threading.Lock(), {"group": "g1"})
        async with TestClient(TestServer(app)) as client:
            page = await (await client.get("/")).text()
            script = await client.get("/static/dashboard.js")
            chart = await client.get("/static/uPlot.iife.min.js")
            answer = await client.get("/api/state")
            return page, script.status, chart.status, orjson.loads(await answer.read())

    page, script, chart, view = asyncio.run(fetch())
    assert "/static/uPlot.iife.min.js" in page and "http" not in page.replace("http-equiv", "")
    assert (script, chart) == (200, 200)
    assert view["metric_name"] == "accuracy" and view["overall"]["metric"] == 0.875
    assert view["about"] == {"group": "g1"} and view["partitions"]["0"]["events"] == 42


def test_each_partition_shows_the_worker_it_is_assigned_to() -> None:
    state = DashboardState()
    state.add_prediction(prediction(0, 0, 1.0, 1), 1_000)
    state.add_prediction(prediction(1, 0, 1.0, 1), 1_000)
    workers = [
        {"worker": "http://a:6066", "host": "10.0.0.1", "partitions": [0]},
        {"worker": "http://b:6067", "host": "10.0.0.2", "partitions": [1]},
    ]
    state.set_workers(workers, "Stable")
    view = state.view()
    assert [view["partitions"][p]["worker"] for p in (0, 1)] == ["http://a:6066", "http://b:6067"]
    assert view["workers"] == workers and view["group_state"] == "Stable"
