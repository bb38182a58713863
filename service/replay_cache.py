"""Full batches of a followed job's events, read once for every stream that replays them.

A stream opened without `Last-Event-ID` replays the job's events from the start, a batch at a
time, on the loop's executor threads. A batch of `BATCH` events never changes once it is full:
events are only appended, each job's under its row lock, so in sequence order. 200 streams
opened together on a job with a long history read and encoded it 200 times over, and those
threads held the GIL while the event loop waited for it: `/healthz` p99 rose to 90-140 ms
(issue 19). Through this cache the first stream to reach a batch reads it and the others
reuse the bytes.

Bounded by the bytes of the events it holds; the least recently used batch goes first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

Event = tuple[int, bytes]  # (seq, the event as SSE bytes)

MAX_BYTES = 32 << 20


class ReplayCache:
    """Full batches by key, at most `max_bytes` of event bytes; safe across threads."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._batches: OrderedDict[Hashable, tuple[list[Event], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> list[Event] | None:
        with self._lock:
            entry = self._batches.get(key)
            if entry is None:
                return None
            self._batches.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, events: list[Event]) -> None:
        size = sum(len(chunk) for _, chunk in events)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._batches.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._batches[key] = (events, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._batches.popitem(last=False)
                self.bytes -= dropped
