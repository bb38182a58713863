"""Sortable string ids: a prefix plus a 26-character ULID-like code.

The code is 48 bits of milliseconds since the epoch and 80 random bits, in Crockford base32,
so ids sort by creation time as plain strings. Within one millisecond the random part is
incremented instead of redrawn, so ids made by one process stay strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 26
PREFIXES = {
    "tenant": "ten", "api_key": "key", "dataset": "ds", "job": "job", "checkpoint": "ckpt",
    "webhook": "wh", "delivery": "dlv", "event": "evt", "model": "mdl", "batch": "bp",
    "sweep": "sw", "upload": "up",
}

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def ulid(now_ms: int | None = None) -> str:
    """A 26-character code: 10 characters of time, 16 of randomness, increasing per process."""
    global _last_ms, _last_random
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # Drawn before taking the lock, used or not: os.urandom is a system call, which releases
    # the GIL, and a thread holding the lock then waits for the GIL while every other
    # thread's id waits for the lock (under load, a tenth of an API worker's submissions
    # were found waiting here).
    fresh = int.from_bytes(os.urandom(10), "big")
    with _lock:
        if ms <= _last_ms:
            # Same (or an earlier, clock stepped back) millisecond: keep order by counting up.
            ms = _last_ms
            rand = (_last_random + 1) % (1 << 80)
        else:
            rand = fresh
        _last_ms, _last_random = ms, rand
    return _encode(ms, 10) + _encode(rand, 16)


def new_id(prefix: str) -> str:
    """`prefix_` followed by a fresh sortable code, e.g. ``job_01JDX3...``."""
    return f"{prefix}_{ulid()}"


def timestamp_ms(identifier: str) -> int:
    """The creation time (ms since the epoch) encoded in an id made by `new_id`."""
    code = identifier.rsplit("_", 1)[-1]
    value = 0
    for char in code[:10]:
        value = value * 32 + ALPHABET.index(char)
    return value
