"""``scripts/demo``'s live loop, as a newcomer runs it: its own broker, a worker, a drifting stream
with late labels, the incidents as they arrive, the backtest beside it; everything stopped at the
end. (The broker here is the demo's own, started by scripts/kafka-local, not the session's.)"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _listening(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_the_demo_shows_incidents_live_equal_to_the_backtest_and_stops_everything(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    done = subprocess.run(
        [
            sys.executable,
            "scripts/live_demo.py",
            "--dir",
            str(tmp_path / "demo"),
            "--limit",
            "10000",
            "--rate",
            "3000",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    # The one abrupt change in the first 10,000 events of agrawal-abrupt, as a subscriber sees it
    # (its incident closes at 9,799: 2,000 events after the last signal joined it).
    live_lines = [line for line in out.splitlines() if line.lstrip().startswith("live ")]
    assert any("incident p0-" in line and " drift " in line for line in live_lines), out
    assert any("recovered" in line for line in live_lines), out
    assert "identical (index, kind, signal, incident)" in out
    assert "found 1/1 on error" in out  # the backtest's summary, printed beside
    # Everything it started is stopped: the broker's port is closed, its pid file gone.
    started = re.search(r"started broker pid (\d+) on (127\.0\.0\.1:\d+)", done.stderr)
    assert started, done.stderr[-2000:]
    assert not _alive(int(started.group(1)))
    assert not _listening(started.group(2))
    assert not (tmp_path / "demo" / "pids.json").exists(), "the demo left processes behind"


def _alive(pid: int) -> bool:
    """Running (a zombie, stopped but not yet reaped by its adopter, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
