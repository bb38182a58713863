"""The replay cache's bound: the bytes of the events it holds, least recently used first."""

from __future__ import annotations

from service.replay_cache import ReplayCache


def batch(first: int, size: int) -> list[tuple[int, bytes]]:
    return [(first + i, b"x" * size) for i in range(4)]  # 4 events of `size` bytes


def test_the_cache_keeps_at_most_its_bytes_and_drops_the_least_recently_used() -> None:
    cache = ReplayCache(max_bytes=100)
    cache.put("a", batch(0, 10))
    cache.put("b", batch(4, 10))
    assert cache.bytes == 80
    assert cache.get("a") == batch(0, 10)  # now the most recently used
    cache.put("c", batch(8, 5))  # 100 bytes would be 100: kept, nothing dropped
    assert cache.bytes == 100
    cache.put("d", batch(12, 5))  # over: "b" (least recently used) goes
    assert cache.get("b") is None
    assert [cache.get(k) is not None for k in "acd"] == [True, True, True]
    assert cache.bytes == 80


def test_a_batch_larger_than_the_cache_is_not_kept_and_a_key_put_again_is_counted_once() -> None:
    cache = ReplayCache(max_bytes=30)
    cache.put("big", batch(0, 10))
    assert cache.get("big") is None and cache.bytes == 0
    cache.put("a", batch(0, 5))
    cache.put("a", batch(0, 5))
    assert cache.bytes == 20
