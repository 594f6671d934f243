"""``PendingLabels``: predictions waiting for their late label, bounded, with a time-to-live.

Keyed by event id. The store is bounded by ``max_pending`` (oldest evicted first) and by a
time-to-live measured on the caller's clock (event time in a backtest, wall time live). An evicted
or expired entry is counted; a label that arrives for it later is "too late" and never learned.

>>> store = PendingLabels(ttl_ms=1000, max_pending=2)
>>> store.add("a", {"p": 1}, now_ms=0)
>>> store.add("b", {"p": 2}, now_ms=10)
>>> store.add("c", {"p": 3}, now_ms=20)    # over the bound: "a" is evicted
>>> store.pop("a", now_ms=30) is None, store.evicted
(True, 1)
>>> store.pop("c", now_ms=30)
{'p': 3}
>>> store.pop("b", now_ms=2000) is None, store.expired   # older than the TTL
(True, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class PendingLabels:
    def __init__(self, ttl_ms: float, max_pending: int) -> None:
        self.ttl_ms = ttl_ms
        self.max_pending = max_pending
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, event_id: Any, entry: Any, now_ms: float) -> None:
        items = self._items
        if event_id in items:
            del items[event_id]  # a re-sent event waits afresh, once
        items[event_id] = (now_ms, entry)
        if len(items) > self.max_pending:
            items.popitem(last=False)
            self.evicted += 1

    def expire(self, now_ms: float) -> None:
        """Drop entries older than the TTL (insertion order is age order)."""
        items = self._items
        horizon = now_ms - self.ttl_ms
        while items:
            first = next(iter(items.values()))
            if first[0] >= horizon:
                break
            items.popitem(last=False)
            self.expired += 1

    def pop(self, event_id: Any, now_ms: float) -> Any | None:
        self.expire(now_ms)
        found = self._items.pop(event_id, None)
        return None if found is None else found[1]
