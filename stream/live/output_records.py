"""The engine's output records onto their topics: predictions keyed by the event's key (or id), drift
alerts and dead letters keyed by partition (snapshots go through the snapshot keeper)."""

from __future__ import annotations

import logging

from driftline.learners.outputs import Outputs
from driftline.live.metrics import WorkerMetrics
from driftline.live.publisher import OutputTooLarge, Publisher, encode
from driftline.settings import TopicsConfig

log = logging.getLogger("driftline.worker")


async def send_outputs(
    publisher: Publisher, topics: TopicsConfig, metrics: WorkerMetrics, p: int, out: Outputs
) -> None:
    """Send ``out``'s predictions, alerts and dead letters of partition ``p`` (retried until the
    broker takes them: see :class:`~driftline.live.publisher.Publisher`)."""
    send_many = publisher.send_many
    partition_key = str(p).encode()
    for record in out.alerts:
        log.info(
            "partition %d: %s %s on %s (%s), action: %s",
            p,
            record.get("detector"),
            record.get("kind"),
            record.get("signal"),
            record.get("index"),
            record.get("action"),
        )
    try:
        if out.predictions:
            await send_many(
                topics.predictions,
                [
                    (str(r["id"] if r["key"] is None else r["key"]).encode(), encode(r))
                    for r in out.predictions
                ],
            )
        if out.alerts:
            await send_many(topics.alerts, [(partition_key, encode(r)) for r in out.alerts])
        if out.dead_letters:
            # Counted once the broker has them (driftline_dead_letters_total); each one is bounded
            # in size (driftline.learners.events.dead_letter), so none is too large to publish.
            counter = metrics.dead_letters
            await send_many(
                topics.dead_letter,
                [(partition_key, encode(r)) for r in out.dead_letters],
                [counter.labels(str(p), r["reason"]).inc for r in out.dead_letters],
            )
    except OutputTooLarge as exc:  # (a record sent again after a failed delivery)
        log.error("partition %d: an output record was dropped: %s", p, exc)
