"""``driftline dashboard`` in a real browser: broker, worker, a drifting stream, headless Chromium.

What is asserted is what a person would see on the page once its scripts ran (Chromium's
``--dump-dom``): the metric's name and value, the event count, a drift incident with the signal
that moved. ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` also keeps the page as a PNG there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from integration.test_live_worker import CORRUPT, REPO_DIR, _free_port, live_factory

pytestmark = pytest.mark.integration
__all__ = ["live_factory"]  # the fixture, imported for pytest

EVENTS = 8000
WAIT_S = 180
BROWSER_TIMEOUT_S = 120
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1400",
    # Time for the first /api/state poll and the charts (virtual: no real wait when idle).
    "--virtual-time-budget=5000",
]


class TextById(HTMLParser):
    """The text inside each element that has an ``id`` (nested ones included)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "link", "meta", "img", "input"):
            return
        element_id = dict(attrs).get("id")
        self.open.append(element_id)
        if element_id:
            self.text.setdefault(element_id, "")

    def handle_endtag(self, tag: str) -> None:
        if self.open and tag not in ("br", "link", "meta", "img", "input"):
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self.open:
            if element_id:
                self.text[element_id] += data


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is needed (apt-get install chromium; scripts/test installs it)")
    return found


def browse(url: str, tmp_path: Path, *extra: str) -> str:
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", *extra, url],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def api_state(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as answer:
            return orjson.loads(answer.read())
    except OSError:
        return None


def test_page_shows_the_metric_the_events_and_the_drift_incident(
    live_factory: Any, tmp_path: Path
) -> None:
    live = live_factory(partitions=2)
    worker = live.start()
    port = _free_port()
    env = {**os.environ, **live.base_env, "PYTHONUNBUFFERED": "1"}
    dashboard_log = tmp_path / "dashboard.log"
    with open(dashboard_log, "wb") as log:
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "driftline", "dashboard", "--port", str(port)],
            cwd=REPO_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # A drifting stream (abrupt drifts at 5,000 and 10,000 of the whole stream), labels 50
        # events late, and a few records no worker can read.
        subprocess.run(
            [
                *(sys.executable, "-m", "driftline", "produce", "--dataset", "agrawal-abrupt"),
                *("--limit", str(EVENTS), "--label-delay", "50"),
            ],
            cwd=REPO_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=WAIT_S,
            check=True,
        )
        live.produce_events([], corrupt=CORRUPT)

        def ready() -> dict[str, Any] | None:
            state = api_state(port)
            if (
                state
                and state["overall"]["events"] == EVENTS + len(CORRUPT)
                and state["incidents"]
                # The group's members are asked for every 2 s: a worker that read the whole
                # stream in less than that was not yet one in the last answer.
                and any(w["partitions"] for w in state["workers"])
            ):
                return state
            return None

        deadline = time.monotonic() + WAIT_S
        while (state := ready()) is None:
            for name, proc in (("worker", worker), ("dashboard", dashboard)):
                assert proc.poll() is None, (
                    f"the {name} exited:\n"
                    + (live.log(worker) if proc is worker else dashboard_log.read_text())[-3000:]
                )
            assert time.monotonic() < deadline, f"no drift incident on the page: {api_state(port)}"
            time.sleep(1)
        assert state["follower"]["status"] == "following"
        # The group has one member, the worker (owning both partitions): not the dashboard.
        assert [w["partitions"] for w in state["workers"]] == [[0, 1]]

        dom = browse(f"http://127.0.0.1:{port}/", tmp_path, "--dump-dom")
        text = TextById()
        text.feed(dom)
        seen = text.text
        assert seen["metric-name"] == "accuracy"
        assert 0.5 < float(seen["metric-value"]) <= 1.0
        assert seen["events-total"] == f"{EVENTS + len(CORRUPT):,}"
        assert int(seen["incident-count"]) >= 1
        # The incident: its id (partition and the event that confirmed it), the error that rose.
        incidents = seen["incidents"]
        assert any(f"{i['id']}" in incidents for i in state["incidents"])
        assert "error d +" in " ".join(incidents.split())
        assert int(seen["dead-total"].replace(",", "")) == len(CORRUPT)

        screenshot = tmp_path / "dashboard.png"
        browse(f"http://127.0.0.1:{port}/", tmp_path, f"--screenshot={screenshot}")
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep = os.environ.get("DASHBOARD_SCREENSHOT")
        if keep:
            shutil.copyfile(screenshot, keep)
    finally:
        if dashboard.poll() is None:
            dashboard.send_signal(signal.SIGINT)
            try:
                dashboard.wait(timeout=20)
            except subprocess.TimeoutExpired:
                dashboard.kill()
                dashboard.wait(timeout=10)
    assert dashboard.returncode == 0, dashboard_log.read_text()[-3000:]
    assert live.stop(worker) == 0
