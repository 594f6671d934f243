"""Quiet the Kafka clients: the records a healthy worker start logs as problems, and the flood of
a broker outage.

**Start-up** (:class:`StartupNoiseFilter`):

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

**A broker outage** (:class:`KafkaClientNoiseFilter`): the clients (aiokafka, kafka-python) log
every failed connect, metadata update, fetch and heartbeat, about every 100 ms each: a 30 s outage
once wrote 55,189 ERROR lines. The filter turns them into one line per state change: ``Kafka broker
unreachable`` when the first connection error comes, ``still unreachable`` at most every
:data:`REPORT_EVERY_S` (doubling up to :data:`REPORT_MAX_S`) with the number of client lines it
held back, and ``reachable again`` once no connection error has come for :data:`QUIET_S`
(:meth:`KafkaClientNoiseFilter.poll`, called by a timer, notices). Other client warnings and
errors pass, but the same message again within :data:`REPEAT_S` is held back and counted on the
next one that passes.

>>> now = [0.0]
>>> said = []
>>> noise = KafkaClientNoiseFilter(clock=lambda: now[0], say=lambda level, msg, *a: said.append(msg % a))
>>> def error(msg, *args):
...     return noise.filter(logging.LogRecord("aiokafka", logging.ERROR, "", 0, msg, args, None))
>>> lost = "Unable connect to node with id %s: %s"
>>> error(lost, 1, "[Errno 111] Connect call failed ('127.0.0.1', 9092)")
False
>>> for i in range(1, 241):  # 30 s of errors, 8 a second
...     now[0] = i / 8
...     _ = error(lost, 1, "[Errno 111] Connect call failed ('127.0.0.1', 9092)")
>>> noise.poll(); now[0] += QUIET_S; noise.poll()
>>> for line in said:
...     print(line.split(" (the Kafka clients")[0].split(" (last:")[0])
Kafka broker unreachable: Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)
Kafka broker still unreachable after 10 s: 80 client log lines held back in the last 10 s
Kafka broker still unreachable after 30 s: 160 client log lines held back in the last 20 s
Kafka broker reachable again: it was unreachable for 30 s (240 client log lines held back)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

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
    Faust app's (mode names a service's logger after the module of its class: ``driftline.live.app``)."""
    noise = StartupNoiseFilter()
    for logger in (logging.getLogger(COORDINATOR_LOGGER), app_logger):
        logger.addFilter(noise)
    return noise


# --------------------------------------------------------------------------- broker outages

#: Loggers of the Kafka clients (and their children): every module logger that exists when the
#: filter is installed, plus these by name (modules imported later still get it).
CLIENT_LOGGER_PREFIXES = ("aiokafka", "kafka", "faust.transport")
CLIENT_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
    "aiokafka.admin.client",
    "kafka",
    "kafka.conn",
    "kafka.client_async",
    "kafka.cluster",
    "kafka.net.manager",
    "kafka.admin.client",
    "kafka.consumer.fetcher",
    "kafka.coordinator.base",
    "kafka.producer.sender",
    "faust.transport.drivers.aiokafka",
)
#: Text of the client records that mean "cannot talk to the broker" (aiokafka 0.14, kafka-python 3).
UNREACHABLE = (
    "Connect call failed",
    "Unable connect",
    "Unable to connect",
    "Unable to update metadata",
    "Unable to request metadata",
    "NodeNotReady",
    "KafkaConnectionError",
    "Connection at ",
    "Connection refused",
    "ConnectionRefused",
    "ConnectionReset",
    "Connect attempt",
    "Closing connection",
    "RequestTimedOut",
    "KafkaTimeoutError",
    "coordinator dead",
    "CoordinatorNotAvailable",
    "CoordinatorLoadInProgress",
    "No node available",
    "Metadata refresh",
    "Broken pipe",
    "Errno 111",
)
#: Client records at INFO that show a broker answering: while down, no "still unreachable" line is
#: written after one (the errors that follow are the reconnection settling).
ANSWERING = ("Discovered coordinator", "Updated metadata", "Bootstrap complete", ": Connected")
#: First "still unreachable" line this long after the outage began; then the interval doubles.
REPORT_EVERY_S = 10.0
REPORT_MAX_S = 300.0
#: No connection error for this long: the broker is back.
QUIET_S = 5.0
#: Another client warning repeated within this long is held back (and counted).
REPEAT_S = 60.0
REPEAT_KEYS_MAX = 1000

Say = Callable[..., None]


def _say(level: int, msg: str, *args: Any) -> None:
    logging.getLogger("driftline.kafka").log(level, msg, *args)


class KafkaClientNoiseFilter(logging.Filter):
    """Collapses the Kafka clients' repeated warnings and errors (see the module docstring).

    Records below WARNING always pass. ``say(level, msg, *args)`` writes the summary lines (to
    the ``driftline.kafka`` logger by default); :meth:`poll` must be called every second or so.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        say: Say = _say,
        quiet_s: float = QUIET_S,
        report_every_s: float = REPORT_EVERY_S,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.say = say
        self.quiet_s = quiet_s
        self.report_every_s = report_every_s
        self.down_since: float | None = None
        self.last_unreachable = 0.0
        self.held_back = 0  # since the last report
        self.held_back_total = 0  # since the outage began
        self.last_message = ""
        self.next_report = 0.0
        self.interval = report_every_s
        self.last_report = 0.0
        self.outages = 0
        self.answered = False  # a broker answered since the last report
        self._repeats: dict[tuple[str, Any], tuple[float, int]] = {}

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            if (
                self.down_since is not None
                and record.levelno == logging.INFO
                and any(text in str(record.msg) for text in ANSWERING)
            ):
                self.answered = True
            return True
        now = self.clock()
        try:
            message = record.getMessage()
        except Exception:  # a broken format: let logging report it
            return True
        if any(text in message for text in UNREACHABLE):
            self.last_unreachable = now
            if self.down_since is None:
                self._lost(now, message)
                return False
            self._hold(now, message)
            return False
        if self.down_since is not None:  # anything else the clients say meanwhile
            self._hold(now, message)
            return False
        return self._first_of_repeats(record, now)

    def poll(self) -> None:
        """Report an outage that goes on, or its end (no connection error for ``quiet_s``)."""
        if self.down_since is None:
            return
        now = self.clock()
        if now - self.last_unreachable >= self.quiet_s:
            self._back(now)
        elif now >= self.next_report and not self.answered:
            self._report(now)

    # ------------------------------------------------------------------ states

    def _lost(self, now: float, message: str) -> None:
        self.down_since = now
        self.outages += 1
        self.held_back = self.held_back_total = 0
        self.interval = self.report_every_s
        self.last_report = now
        self.next_report = now + self.interval
        self.answered = False
        self.last_message = message
        self.say(
            logging.ERROR,
            "Kafka broker unreachable: %s (the Kafka clients keep retrying on their own; their "
            "errors are summarised here until it is back)",
            message,
        )

    def _hold(self, now: float, message: str) -> None:
        self.held_back += 1
        self.held_back_total += 1
        self.last_message = message
        if now >= self.next_report and not self.answered:
            self._report(now)

    def _report(self, now: float) -> None:
        assert self.down_since is not None
        self.say(
            logging.WARNING,
            "Kafka broker still unreachable after %.0f s: %d client log lines held back in the "
            "last %.0f s (last: %s)",
            now - self.down_since,
            self.held_back,
            now - self.last_report,
            self.last_message,
        )
        self.held_back = 0
        self.last_report = now
        self.interval = min(self.interval * 2, REPORT_MAX_S)
        self.next_report = now + self.interval

    def _back(self, now: float) -> None:
        assert self.down_since is not None
        self.say(
            logging.WARNING,
            "Kafka broker reachable again: it was unreachable for %.0f s (%d client log lines "
            "held back)",
            self.last_unreachable - self.down_since,
            self.held_back_total,
        )
        self.down_since = None

    def _first_of_repeats(self, record: logging.LogRecord, now: float) -> bool:
        key = (record.name, record.msg)
        seen = self._repeats.get(key)
        if seen is not None and now - seen[0] < REPEAT_S:
            self._repeats[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._repeats) >= REPEAT_KEYS_MAX:
            self._repeats.clear()
        self._repeats[key] = (now, 0)
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} (and {seen[1]} more like it in the last %.0f s)"
            record.args = (now - seen[0],)
        return True


def client_loggers(names: Iterable[str] = ()) -> list[logging.Logger]:
    """The Kafka clients' loggers: those that exist now under :data:`CLIENT_LOGGER_PREFIXES`,
    :data:`CLIENT_LOGGERS` and ``names``."""
    existing = [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name == p or name.startswith(p + ".") for p in CLIENT_LOGGER_PREFIXES)
    ]
    wanted = dict.fromkeys([*CLIENT_LOGGERS, *existing, *names])
    return [logging.getLogger(name) for name in wanted]


def install_client_noise_filter() -> KafkaClientNoiseFilter:
    """Attach one :class:`KafkaClientNoiseFilter` to every Kafka client logger; the caller runs
    its :meth:`~KafkaClientNoiseFilter.poll` every second."""
    noise = KafkaClientNoiseFilter()
    for logger in client_loggers():
        logger.addFilter(noise)
    return noise
