"""The worker's consumer on the real broker: what faust_internals sets on aiokafka's fetcher."""

from __future__ import annotations

import asyncio

import pytest

from driftline.live.faust_internals import PREFETCH_BACKOFF_S, fast_delivery_app

pytestmark = pytest.mark.integration


def test_the_started_consumer_fetches_again_soon_while_fetched_records_wait(
    kafka_bootstrap: str,
) -> None:
    """aiokafka's fetcher is made when the consumer starts (on the broker), with a 100 ms
    backoff; the worker's consumer thread sets its own once it has started."""

    async def nothing() -> None: ...

    async def run() -> float:
        app = fast_delivery_app(
            "t-fetcher-backoff",
            {},
            nothing,
            lambda tps: set(),
            broker=f"kafka://{kafka_bootstrap}",
            autodiscover=False,
        )
        thread = app.consumer._thread  # type: ignore[attr-defined]
        await asyncio.wait_for(thread.start(), 60)
        try:
            return float(thread._ensure_consumer()._fetcher._prefetch_backoff)
        finally:
            await asyncio.wait_for(thread.stop(), 60)

    assert asyncio.run(run()) == PREFETCH_BACKOFF_S != 0.1
