"""``PendingLabels``: predictions waiting for their late label, bounded, with a time-to-live.

Keyed by event id. The store is bounded by ``max_pending`` (oldest evicted first) and by a
time-to-live on the engine's clock (event time: the same in a backtest, live and on a replay). An
evicted or expired entry is counted; a label that arrives for it later is "too late" and never
learned. With ``keep_dropped``, what left the store is kept for :meth:`take_dropped` (the engine
dead-letters labels that never met their event).

>>> store = PendingLabels(ttl_ms=1000, max_pending=2)
>>> store.add("a", {"p": 1}, now_ms=0)
>>> store.add("b", {"p": 2}, now_ms=10)
>>> store.add("c", {"p": 3}, now_ms=20)    # over the bound: "a" is evicted
>>> store.pop("a", now_ms=30) is None, store.evicted
(True, 1)
>>> store.pop("c", now_ms=30)
{'p': 3}
>>> "b" in store
True
>>> store.pop("b", now_ms=2000) is None, store.expired   # older than the TTL
(True, 1)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

#: How far an event's ``ts`` may run ahead of the Kafka timestamp of its record (a producer clock
#: far ahead must not expire every waiting label at once).
MAX_CLOCK_SKEW_MS = 60_000


class PendingLabels:
    def __init__(self, ttl_ms: float, max_pending: int, *, keep_dropped: bool = False) -> None:
        self.ttl_ms = ttl_ms
        self.max_pending = max_pending
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.evicted = 0
        self.expired = 0
        self._dropped: list[tuple[Any, Any]] | None = [] if keep_dropped else None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, event_id: Any) -> bool:
        return event_id in self._items

    def add(self, event_id: Any, entry: Any, now_ms: float) -> None:
        items = self._items
        if event_id in items:
            del items[event_id]  # a re-sent event waits afresh, once
        items[event_id] = (now_ms, entry)
        if len(items) > self.max_pending:
            self._drop(*items.popitem(last=False))
            self.evicted += 1

    def expire(self, now_ms: float) -> None:
        """Drop entries older than the TTL (insertion order is age order)."""
        items = self._items
        horizon = now_ms - self.ttl_ms
        while items:
            first = next(iter(items.values()))
            if first[0] >= horizon:
                break
            self._drop(*items.popitem(last=False))
            self.expired += 1

    def pop(self, event_id: Any, now_ms: float) -> Any | None:
        self.expire(now_ms)
        found = self._items.pop(event_id, None)
        return None if found is None else found[1]

    def take_dropped(self) -> list[tuple[Any, Any]]:
        """``(id, entry)`` of what was evicted or expired since the last call (``keep_dropped``)."""
        dropped = self._dropped
        if not dropped:
            return []
        self._dropped = []
        return dropped

    def _drop(self, event_id: Any, item: tuple[float, Any]) -> None:
        if self._dropped is not None:
            self._dropped.append((event_id, item[1]))
