"""Quiet the two records a healthy worker start logs as problems.

* aiokafka logs ``Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError``
  at ERROR while a fresh broker is still electing the group coordinator, then retries and
  succeeds: a retriable error during start-up is not one. It is demoted to INFO for the first
  ``STARTUP_SECONDS``; later, or when not retriable, it stays an ERROR.
* Faust logs ``Missing sensor state for rebalance #1`` at WARNING on the first rebalance of every
  start (its sensors see the rebalance end before any start was recorded): demoted to DEBUG for
  rebalance #1 only.

>>> import logging
>>> quiet = StartupNoiseFilter(started=0.0, clock=lambda: 5.0)
>>> record = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.ERROR, "", 0,
...     "Group Coordinator Request failed: %s", ("[Error 15] GroupCoordinatorNotAvailableError",), None)
>>> quiet.filter(record), record.levelname
(True, 'INFO')
>>> late = StartupNoiseFilter(started=0.0, clock=lambda: 500.0)
>>> record = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.ERROR, "", 0,
...     "Group Coordinator Request failed: %s", ("[Error 15] GroupCoordinatorNotAvailableError",), None)
>>> late.filter(record), record.levelname
(True, 'ERROR')
>>> record = logging.LogRecord("faust.app.base", logging.WARNING, "", 0,
...     "[^--App]: Missing sensor state for rebalance #%s", (1,), None)
>>> quiet.filter(record), record.levelname
(True, 'DEBUG')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

STARTUP_SECONDS = 60.0
#: Coordinator errors that only mean "not ready yet" (Kafka's retriable coordinator errors).
NOT_READY = ("GroupCoordinatorNotAvailable", "CoordinatorNotAvailable", "CoordinatorLoadInProgress")
COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"


def _demote(record: logging.LogRecord, level: int) -> None:
    record.levelno = level
    record.levelname = logging.getLevelName(level)


class StartupNoiseFilter(logging.Filter):
    """Demotes the start-up records above; never drops a record."""

    def __init__(self, started: float | None = None, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.clock = clock
        self.started = clock() if started is None else started

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (
            record.levelno == logging.ERROR
            and message.startswith("Group Coordinator Request failed")
            and any(name in message for name in NOT_READY)
            and self.clock() - self.started < STARTUP_SECONDS
        ):
            _demote(record, logging.INFO)
        elif record.levelno == logging.WARNING and message.endswith(
            ("Missing sensor state for rebalance #1", "Missing sensor state for rebalance end #1")
        ):  # Faust's service logger puts its label first: "[^Worker]: Missing sensor ..."
            _demote(record, logging.DEBUG)
        return True


def install_startup_noise_filter(app_logger: logging.Logger) -> StartupNoiseFilter:
    """Attach one filter to the loggers that write these records: aiokafka's coordinator and the
    Faust app's (mode names a service's logger after the module of its class: ``stream.app``)."""
    noise = StartupNoiseFilter()
    for logger in (logging.getLogger(COORDINATOR_LOGGER), app_logger):
        logger.addFilter(noise)
    return noise
