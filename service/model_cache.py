"""Recently used networks, kept in memory so predict does not re-read a checkpoint per request.

Checkpoints are immutable once written (a new epoch is a new checkpoint id), so an entry keyed
by checkpoint id never goes stale; only memory bounds it, hence an LRU bounded by the bytes of
its entries (``size_of``), re-measured when a use can have grown them (a network's layers
keep the scratch of their last forward pass, which grows with the largest batch it ran), and
optionally by count.

The same LRU keeps other values that never change once made, by their bytes: uploaded arrays
(service/api/data.py) and full batches of the events that streams replay
(service/event_stream.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


def _one(_value: Any) -> int:
    return 1


class ModelCache:
    """A thread-safe LRU (gunicorn gthread serves requests on threads).

    At most `capacity` entries and `max_bytes` bytes by `size_of`; an entry larger than
    `max_bytes` on its own is returned but not kept.
    """

    def __init__(self, capacity: int | None = 32, *, max_bytes: int | None = None,
                 size_of: Callable[[Any], int] = _one) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.size_of = size_of
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        # Per key: (its bytes, the highest mark it was measured at).
        self._measures: dict[Hashable, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._total()

    def get_or_load(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The cached value for `key`, or `load()` stored under it (outside the lock: slow I/O)."""
        found, value = self._lookup(key)
        if not found:
            value = load()
            self._store(key, value)
        return value

    def get(self, key: Hashable) -> Any | None:
        """The cached value for `key` (now the most recently used), or None."""
        return self._lookup(key)[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Keep `value` under `key` (evicting to fit), for a caller that decides what to keep."""
        self._store(key, value)

    def _lookup(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if key not in self._items:
                self.misses += 1
                return False, None
            self._items.move_to_end(key)
            self.hits += 1
            return True, self._items[key]

    def remeasure(self, key: Hashable, mark: int) -> None:
        """Measure `key`'s entry again and evict to fit, if `mark` (what can have grown it:
        the rows of a forward pass) passes the highest mark it was measured at. Walking a
        network's arrays after every request was a quarter of predict's CPU; a smaller batch
        only leaves the entry's measure high, which errs toward evicting sooner."""
        with self._lock:
            value = self._items.get(key)
            if value is None or mark <= self._measures.get(key, (0, 0))[1]:
                return
        self._store(key, value, mark)

    def _store(self, key: Hashable, value: Any, mark: int = 0) -> None:
        size = int(self.size_of(value))
        with self._lock:
            self._items.pop(key, None)
            self._measures.pop(key, None)
            if self.max_bytes is not None and size > self.max_bytes:
                return  # kept by the caller for this request only
            self._items[key] = value
            self._measures[key] = (size, mark)
            while (self.capacity is not None and len(self._items) > self.capacity) or (
                    self.max_bytes is not None and self._total() > self.max_bytes):
                old, _ = self._items.popitem(last=False)
                self._measures.pop(old, None)

    def _total(self) -> int:
        """The entries' bytes (the caller holds the lock)."""
        return sum(size for size, _ in self._measures.values())

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._measures.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items
