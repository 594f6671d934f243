"""Shared pytest fixtures.

Integration tests (marker ``integration``) talk to a real Kafka broker through the
``kafka_bootstrap`` fixture:

* ``KAFKA_BOOTSTRAP=host:port`` set: that broker is used as is (and left running).
* otherwise the fixture starts a private broker with ``scripts/kafka-local start`` on free ports
  and a temporary data directory, and stops it at the end of the session. The first run fetches
  the broker jars with Maven (Java 17 and Maven needed); later runs reuse them.

A broker that cannot be started fails the tests, never skips them: in CI (``CI=true``) the
integration tests are required, and locally a silent skip would hide that nothing was tested.

``UNCONFIRMED`` (importable as ``from conftest import UNCONFIRMED``) is the detector setting for
tests of what a drift *does* (the actions, the fallback under alarm, a mid-batch reset): with it
a detector's raw alarm is a drift at once, with no confirmation window, effect size or false-alarm
budget, so those tests do not depend on the confirmation step (tested on its own).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
KAFKA_LOCAL = REPO_DIR / "scripts" / "kafka-local"
# Maven download on the first run + KAFKA_START_TIMEOUT (90 s) of the script itself.
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 60

#: ``detectors.<signal>`` settings under which a detector's alarm is a drift at once (the
#: defaults confirm it first: ``confirm_events`` values later, ``min_effect``, ``ert``).
#: Usage: ``detectors={"error": UNCONFIRMED}`` or ``{"error": {**UNCONFIRMED, "warning": False}}``.
UNCONFIRMED: dict[str, float | int] = {"min_effect": 0.0, "ert": 0.0, "confirm_events": 0}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kafka_local(
    command: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_LOCAL), command],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address (``127.0.0.1:<port>``) of a running Kafka 3.9 broker."""
    given = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if given:
        yield given
        return

    port = _free_port()
    controller_port = _free_port()
    while controller_port == port:
        controller_port = _free_port()
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_DATA_DIR": str(tmp_path_factory.mktemp("kafka")),
    }
    try:
        started = _kafka_local("start", env, START_TIMEOUT_S)
        output = started.stdout.strip().splitlines()
        ok = started.returncode == 0 and bool(output)
        detail = f"exit {started.returncode}\n{started.stderr}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, output, detail = False, [], repr(exc)
    try:
        if not ok:
            if os.environ.get("CI") == "true":
                where = "CI=true: the integration tests are required here"
            else:
                where = "see below; KAFKA_BOOTSTRAP=host:port would use a running broker"
            pytest.fail(
                f"could not start a Kafka broker with {KAFKA_LOCAL} start ({where}):\n{detail}",
                pytrace=False,
            )
        yield output[-1]
    finally:
        # Also after a failed or timed-out start: stop only touches the broker this data dir's
        # pid file names, i.e. the one started above.
        _kafka_local("stop", env, STOP_TIMEOUT_S)
