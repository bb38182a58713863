"""The fixed-window rate limiter: exact counts, chunked claims from Redis, and their bound."""

from __future__ import annotations

import time
import uuid

import pytest

from service.limits import CLAIM_FRACTION, KEY_PREFIX, RateLimiter, parse_rate_limits


def allowed(limiter: RateLimiter, name: str, hits: int) -> int:
    return sum(limiter.hit(name)[0] for _ in range(hits))


def test_small_limits_are_counted_one_by_one_and_reopen_with_the_next_window() -> None:
    limiter = RateLimiter(parse_rate_limits("3 per second"), "memory://")
    assert [limiter.hit("k")[0] for _ in range(4)] == [True, True, True, False]
    ok, retry, text = limiter.hit("k")
    assert (ok, retry, text) == (False, 1, "3 per second")
    time.sleep(1.05)
    assert limiter.hit("k")[0]


def test_every_limit_of_a_list_applies() -> None:
    limiter = RateLimiter(parse_rate_limits("100 per hour; 2 per second"), "memory://")
    assert allowed(limiter, "k", 5) == 2
    assert limiter.hit("k")[2] == "2 per second"


def test_one_process_gets_exactly_its_limit_in_chunks() -> None:
    limiter = RateLimiter(parse_rate_limits("1000 per minute"), "memory://")
    assert allowed(limiter, "k", 1200) == 1000
    assert allowed(limiter, "other", 10) == 10  # per key


@pytest.mark.redis
def test_processes_share_one_budget_claiming_a_chunk_per_round_trip(redis_url: str) -> None:
    import redis

    limits = parse_rate_limits("1000 per minute")
    chunk = 1000 // CLAIM_FRACTION
    first, second = RateLimiter(limits, redis_url), RateLimiter(limits, redis_url)
    name = uuid.uuid4().hex
    counter = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}:60:1000:{name}"

    assert allowed(first, name, 3 * chunk + 1) == 3 * chunk + 1
    assert int(counter.get(key) or 0) == 4 * chunk  # 4 round trips, not 151
    assert 59_000 < int(counter.pttl(key)) <= 60_000
    # Taking turns, the two spend the whole budget and not one hit more.
    turns = [allowed(limiter, name, 1) for _ in range(600) for limiter in (first, second)]
    assert sum(turns) + 3 * chunk + 1 == 1000


@pytest.mark.redis
def test_a_chunk_held_by_another_process_is_the_most_refused_early(redis_url: str) -> None:
    limits = parse_rate_limits("1000 per minute")
    chunk = 1000 // CLAIM_FRACTION
    holder, busy = RateLimiter(limits, redis_url), RateLimiter(limits, redis_url)
    name = uuid.uuid4().hex
    assert holder.hit(name)[0]  # claims a chunk and spends one hit of it
    assert allowed(busy, name, 2000) == 1000 - chunk
    ok, retry, _ = busy.hit(name)
    assert not ok and 1 <= retry <= 60
    assert allowed(holder, name, 2 * chunk) == chunk - 1  # the held hits are still good


def test_redis_down_falls_back_to_counting_in_memory() -> None:
    limiter = RateLimiter(parse_rate_limits("2 per minute"), "redis://127.0.0.1:1/0")
    assert [limiter.hit("k")[0] for _ in range(3)] == [True, True, False]
