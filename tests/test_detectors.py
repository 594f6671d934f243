"""Drift monitors: exact alert indices on seeded streams for every detector configuration."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from driftline.detectors import (
    FeatureMonitors,
    IncidentTracker,
    ScaledMonitor,
    SignalMonitor,
    build_detector,
)
from driftline.learners.config import ConfigError

Alerts = list[tuple[str, int]]


def _bernoulli(seed: int, *segments: tuple[float, int]) -> list[float]:
    """0/1 values (an error signal): ``count`` draws with rate ``p`` per segment."""
    rng = random.Random(seed)
    return [float(rng.random() < p) for p, count in segments for _ in range(count)]


def _run(monitor: Any, values: list[float]) -> Alerts:
    return [(a["kind"], a["index"]) for i, v in enumerate(values) if (a := monitor.update(v, i))]


RISING = _bernoulli(7, (0.1, 2000), (0.4, 2000))
FALLING = _bernoulli(7, (0.4, 2000), (0.1, 2000))
STATIONARY = _bernoulli(11, (0.2, 10_000))
# A short excursion: up at 2000, back down at 2300.
BLIP = _bernoulli(3, (0.1, 2000), (0.6, 300), (0.1, 2000))


# (kind, warning, direction) -> alerts on RISING, then on FALLING; computed once and pinned.
# A drift does not end a warning: the warning detector's later alarms in the same change (e.g.
# Page-Hinkley's at 2372) stay silent until the warning lapses after recovery_events.
EXPECTED: dict[tuple[str, bool, str], tuple[Alerts, Alerts]] = {
    ("adwin", True, "up"): (
        [("warning", 2047), ("drift", 2079), ("recovered", 3079)],
        [],
    ),
    ("adwin", True, "both"): (
        [("warning", 2047), ("drift", 2079), ("recovered", 3079)],
        [("warning", 2047), ("drift", 2079), ("recovered", 3079)],
    ),
    ("adwin", False, "up"): ([("drift", 2079), ("recovered", 3079)], []),
    ("adwin", False, "both"): (
        [("drift", 2079), ("recovered", 3079)],
        [("drift", 2079), ("recovered", 3079)],
    ),
    # Under "up" the alarm at 3991 is not a rise from the level after the drift (the reference
    # is taken again after each drift), so it is no drift.
    ("page_hinkley", True, "up"): (
        [("warning", 2052), ("drift", 2182), ("recovered", 3182)],
        [],
    ),
    ("page_hinkley", True, "both"): (
        [("warning", 2052), ("drift", 2182), ("recovered", 3182), ("drift", 3991)],
        [("warning", 1535), ("drift", 2059), ("recovered", 3059)],
    ),
    ("page_hinkley", False, "up"): ([("drift", 2182), ("recovered", 3182)], []),
    ("page_hinkley", False, "both"): (
        [("drift", 2182), ("recovered", 3182), ("drift", 3991)],
        [("drift", 2059), ("recovered", 3059)],
    ),
}


@pytest.mark.parametrize(
    ("kind", "warning", "direction"),
    list(EXPECTED),
)
def test_each_configuration_alerts_at_pinned_indices(
    kind: str, warning: bool, direction: str
) -> None:
    rising, falling = EXPECTED[kind, warning, direction]
    options = {"warning": warning, "direction": direction}
    assert _run(SignalMonitor("error", kind, {}, **options), FALLING) == falling
    assert _run(SignalMonitor("error", kind, {}, **options), RISING) == rising


@pytest.mark.parametrize(("kind", "warning", "direction"), list(EXPECTED))
def test_no_drift_on_a_stationary_stream(kind: str, warning: bool, direction: str) -> None:
    monitor = SignalMonitor("error", kind, {}, warning=warning, direction=direction)
    alerts = _run(monitor, STATIONARY)
    assert [a for a in alerts if a[0] != "warning"] == []
    assert not monitor.alarm_active


def test_warning_is_the_more_sensitive_detector() -> None:
    monitor = SignalMonitor("error", "adwin", {})
    assert monitor.detector.delta == 0.002  # River's default: the drift level
    assert monitor.warner is not None and monitor.warner.delta == 0.05
    custom = SignalMonitor("error", "adwin", {"delta": 0.001}, warning_overrides={"delta": 0.1})
    assert custom.warner is not None and custom.warner.delta == 0.1
    assert SignalMonitor("error", "adwin", {}, warning=False).warner is None


def test_drift_alert_carries_the_detector_signal_and_evidence() -> None:
    monitor = SignalMonitor("error", "adwin", {}, warning=False, direction="up")
    alerts = [a for i, v in enumerate(RISING) if (a := monitor.update(v, i))]
    drift = alerts[0]
    assert (drift["kind"], drift["detector"], drift["signal"], drift["index"]) == (
        "drift",
        "adwin",
        "error",
        2079,
    )
    evidence = drift["evidence"]
    # The reference is every value since the last reset, the recent window included.
    assert evidence["n_after"] == 100 and evidence["n_before"] == 2080
    assert 0.05 < evidence["before"] < 0.15 and 0.3 < evidence["after"] < 0.5
    # No confirmation window (the default): the alarm is decided where it fires, on the same
    # recent values, and its effect is the shift in reference standard deviations.
    assert drift["first_index"] == 2079
    effect = drift["effect"]
    assert (effect["before"], effect["after"], effect["n_after"]) == (
        evidence["before"],
        evidence["after"],
        100,
    )
    assert effect["d"] > 0.5


def test_falling_error_is_not_a_drift_when_watching_increases() -> None:
    monitor = SignalMonitor("error", "adwin", {}, direction="up")
    assert _run(monitor, FALLING) == []
    assert not monitor.alarm_active
    # The detector did fire on the fall: the monitor chose not to call it drift.
    both = SignalMonitor("error", "adwin", {}, direction="both")
    assert ("drift", 2079) in _run(both, FALLING)


@pytest.mark.parametrize(
    ("confirm_events", "drift_at"),
    [(0, 2047), (200, 2247)],
)
def test_error_falling_during_an_alarm_ends_it_early_as_recovered(
    confirm_events: int, drift_at: int
) -> None:
    monitor = SignalMonitor(
        "error",
        "adwin",
        {},
        warning=False,
        direction="up",
        recovery_events=5000,
        confirm_events=confirm_events,
    )
    # The rise at 2000 fires at 2047 and is a drift once confirmed; the fall back at 2300 fires
    # at 2367 and ends the alarm.
    assert _run(monitor, BLIP) == [("drift", drift_at), ("recovered", 2367)]
    assert not monitor.alarm_active


@pytest.mark.parametrize(
    ("cooldown", "expected"),
    [
        (0, [("drift", 2047), ("drift", 2367), ("recovered", 3367)]),
        (200, [("drift", 2047), ("drift", 2367), ("recovered", 3367)]),
        (1000, [("drift", 2047), ("recovered", 3367)]),
    ],
)
def test_cooldown_debounces_alerts_of_one_kind(cooldown: int, expected: Alerts) -> None:
    monitor = SignalMonitor(
        "error", "adwin", {}, warning=False, direction="both", cooldown=cooldown
    )
    alerts = _run(monitor, BLIP)
    assert alerts == expected
    drifts = [i for kind, i in alerts if kind == "drift"]
    assert all(b - a >= cooldown for a, b in itertools.pairwise(drifts))


@pytest.mark.parametrize("recovery_events", [1, 500, 1000])
def test_recovered_comes_after_recovery_events_quiet_updates(recovery_events: int) -> None:
    monitor = SignalMonitor(
        "error", "adwin", {}, warning=False, direction="up", recovery_events=recovery_events
    )
    assert _run(monitor, RISING) == [("drift", 2079), ("recovered", 2079 + recovery_events)]


def test_alarm_stays_active_until_recovered() -> None:
    monitor = SignalMonitor("error", "adwin", {}, warning=False, direction="up")
    active = []
    for i, value in enumerate(RISING):
        monitor.update(value, i)
        active.append(monitor.alarm_active)
    assert active.index(True) == 2079
    assert all(active[2079:3079]) and not any(active[3079:])


def test_reset_forgets_the_detector_state() -> None:
    monitor = SignalMonitor("error", "adwin", {}, warning=False, direction="up")
    for i, value in enumerate(RISING[:2070]):
        monitor.update(value, i)
    monitor.reset()
    # The rise is now the whole history: nothing to compare it with, so no drift at 2079.
    alerts = [
        (a["kind"], a["index"])
        for i, v in enumerate(RISING[2070:], 2070)
        if (a := monitor.update(v, i))
    ]
    assert ("drift", 2079) not in alerts


# --------------------------------------------------------------------------- scaled / features


def _gauss_shift(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(20, 2) for _ in range(3000)] + [rng.gauss(23, 2) for _ in range(3000)]


def test_scaled_monitor_detects_a_mean_shift_whatever_the_unit() -> None:
    alerts = {}
    for scale in (1.0, 1000.0):
        monitor = ScaledMonitor("feature:temp", "adwin", {}, reference_size=500)
        alerts[scale] = [
            (a["kind"], a["index"])
            for i, v in enumerate(_gauss_shift(3))
            if (a := monitor.update(v * scale, i))
        ]
    assert alerts[1.0] == alerts[1000.0]
    assert [a for a in alerts[1.0] if a[0] == "drift"] == [("drift", 3091)]


def test_scaled_monitor_reports_its_reference_and_takes_a_new_one_after_drift() -> None:
    monitor = ScaledMonitor("feature:temp", "adwin", {}, reference_size=500)
    drift = next(
        a
        for i, v in enumerate(_gauss_shift(3))
        if (a := monitor.update(v, i)) and a["kind"] == "drift"
    )
    assert drift["evidence"]["reference_mean"] == pytest.approx(20, abs=0.3)
    assert drift["evidence"]["reference_std"] == pytest.approx(2, abs=0.3)
    assert monitor._scale == 0.0  # collecting the new regime's reference


def test_scaled_monitor_on_a_constant_reference_still_detects_a_change() -> None:
    monitor = ScaledMonitor("feature:flag", "adwin", {}, reference_size=100)
    values = [1.0] * 1000 + [2.0] * 500
    assert _run(monitor, values) == [("drift", 1027)]


def test_feature_monitors_alert_on_the_feature_that_shifts() -> None:
    rng = random.Random(5)
    monitors = FeatureMonitors("adwin", {}, reference_size=300)
    alerts = []
    for i in range(3000):
        x = {
            "a": rng.gauss(0, 1) + (3 if i >= 1500 else 0),
            "b": rng.gauss(5, 2),
            "site": "north",
            "ok": True,
        }
        alerts += [(a["signal"], a["kind"], a["index"]) for a in monitors.update(x, i)]
    assert sorted(monitors.monitors) == ["a", "b"]  # strings and booleans are not watched
    assert alerts == [("feature:a", "drift", 1547), ("feature:a", "recovered", 2847)]


def test_feature_monitors_are_bounded_and_can_be_restricted() -> None:
    bounded = FeatureMonitors("adwin", {}, max_features=2)
    only = FeatureMonitors("adwin", {}, features=("c", "e"))
    for i in range(10):
        x = {name: float(i) for name in "abcdef"}
        bounded.update(x, i)
        only.update(x, i)
    assert sorted(bounded.monitors) == ["a", "b"]
    assert sorted(only.monitors) == ["c", "e"]


def test_feature_monitors_restricted_to_a_feature_ignore_other_shifts() -> None:
    rng = random.Random(5)
    monitors = FeatureMonitors("adwin", {}, features=("b", "c"), reference_size=300)
    alerts = []
    for i in range(3000):
        x = {
            "a": rng.gauss(0, 1) + (3 if i >= 1500 else 0),
            "b": rng.gauss(5, 2),
            "c": rng.gauss(0, 1) + (2 if i >= 2000 else 0),
        }
        alerts += [(a["signal"], a["kind"], a["index"]) for a in monitors.update(x, i)]
    assert alerts == [("feature:c", "warning", 2027), ("feature:c", "drift", 2059)]


# --------------------------------------------------------------------------- configuration


def test_unknown_detector_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^detectors\.error\.kind: unknown detector 'kswin'"):
        build_detector("kswin", {}, key="detectors.error")
    with pytest.raises(ConfigError, match=r"^detector\.kind: unknown detector 'adwni'"):
        SignalMonitor("error", "adwni", {})


def test_unknown_detector_parameter_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(
        ConfigError, match=r"^detectors\.features\.params: 'adwin' has no parameter dleta; valid: "
    ):
        build_detector("adwin", {"dleta": 0.1}, key="detectors.features")
    with pytest.raises(ConfigError, match=r"^detector\.params: 'page_hinkley' has no parameter"):
        SignalMonitor("error", "page_hinkley", {"delta": 0.01, "window": 5})


@pytest.mark.parametrize(
    ("kind", "params"), [("adwin", {"delta": "high"}), ("page_hinkley", {"mode": "sideways"})]
)
def test_detector_parameter_value_it_rejects_is_a_config_error(kind: str, params: dict) -> None:
    with pytest.raises(ConfigError, match=rf"^detectors\.error\.params: '{kind}' rejected them"):
        build_detector(kind, params, key="detectors.error")


def test_page_hinkley_parameter_of_the_wrong_type_is_refused_when_built() -> None:
    # BUG: River's PageHinkley does not check its arguments, so delta="high" builds, passes
    # load_settings, and only fails at the first update, mid-stream, with a TypeError.
    with pytest.raises(ConfigError, match=r"^detectors\.error\.params"):
        build_detector("page_hinkley", {"delta": "high"}, key="detectors.error")


# --------------------------------------------------------------------------- slow changes

# A share that climbs from 0.3 to 0.6 over 6000 values: the detector fires early in the climb,
# when the first confirmation window has moved too little to count.
RAMP = _bernoulli(5, (0.3, 3000), *((0.3 + 0.3 * k / 12, 500) for k in range(1, 13)), (0.6, 2000))


def _confirmed(min_effect: float) -> SignalMonitor:
    return SignalMonitor(
        "prediction:x",
        "adwin",
        {},
        warning=False,
        binary=True,
        min_effect=min_effect,
        ert=1_000_000,
        confirm_events=500,
    )


def test_a_gradual_change_is_confirmed_as_it_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    growing = _confirmed(0.4)
    drifts = [a for i, v in enumerate(RAMP) if (a := growing.update(v, i)) and a["kind"] == "drift"]
    assert len(drifts) == 1 and drifts[0]["effect"]["d"] >= 0.4
    # It was the first alarm, tested again on later windows, not a new alarm from scratch.
    assert drifts[0]["index"] - drifts[0]["first_index"] > 500
    monkeypatch.setattr("driftline.detectors.monitor.MAX_RETESTS", 0)
    once = _confirmed(0.4)
    first = [a for i, v in enumerate(RAMP) if (a := once.update(v, i)) and a["kind"] == "drift"]
    assert once.not_significant >= 1
    assert not first or first[0]["index"] > drifts[0]["index"]


def test_retests_keep_the_false_alarm_budget_on_a_stationary_stream() -> None:
    monitor = _confirmed(0.0)  # the budget alone decides
    assert _run(monitor, STATIONARY * 5) == []


def test_after_recovery_the_reference_is_the_settled_level() -> None:
    # An adapting model: its error jumps, then settles above the old level. The alarm's
    # reference after recovery is the settled level, not a mean that holds the transient.
    values = _bernoulli(9, (0.1, 3000), (0.4, 600), (0.15, 4000))
    monitor = SignalMonitor(
        "error",
        "adwin",
        {},
        direction="up",
        binary=True,
        min_effect=0.15,
        ert=1_000_000,
        confirm_events=400,
        rebase_on_recovery=True,
    )
    kinds, sizes_at_recovery = [], []
    for i, value in enumerate(values):
        alert = monitor.update(value, i)
        if alert is not None:
            kinds.append(alert["kind"])
            if alert["kind"] == "recovered":
                sizes_at_recovery.append(monitor.reference.n)
    assert kinds[:3] == ["warning", "drift", "recovered"]
    assert abs(monitor.reference.mean - 0.15) < 0.03
    # Never an empty reference: it starts from the recent values (an alarm right after the
    # recovery would otherwise be measured against a mean of nothing: d 5.6 on sea-abrupt).
    assert sizes_at_recovery and min(sizes_at_recovery) >= 100


# --------------------------------------------------------------------------- incidents


def _drift(signal: str, index: int) -> dict[str, Any]:
    return {
        "kind": "drift",
        "signal": signal,
        "detector": "adwin",
        "index": index,
        "first_index": index - 400,
        "effect": {"d": 0.5, "before": 0.1, "after": 0.3},
    }


def test_a_signal_that_recovered_and_drifts_again_is_a_new_incident() -> None:
    tracker = IncidentTracker(close_after=2000, partition=0)
    assert tracker.on_drift(_drift("error", 2600))["kind"] == "drift"
    # Another signal joins, and a second drift of the error before it recovered: one change.
    assert tracker.close_for_new_change(_drift("prediction:True", 3100)) is None
    assert tracker.on_drift(_drift("prediction:True", 3100))["kind"] == "update"
    assert tracker.close_for_new_change(_drift("error", 3300)) is None
    tracker.on_signal_recovered("feature:x")  # not in the incident: changes nothing
    tracker.on_signal_recovered("error")
    closing = tracker.close_for_new_change(_drift("error", 5100))
    assert closing is not None
    assert (closing["kind"], closing["incident"], closing["index"]) == (
        "recovered",
        "p0-2600",
        5100,
    )
    opened = tracker.on_drift(_drift("error", 5100))
    assert (opened["kind"], opened["incident"]) == ("drift", "p0-5100")
    assert [s["signal"] for s in opened["signals"]] == ["error"]
