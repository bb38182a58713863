"""Dispatch to Redis: one long-lived client per publishing channel, every message delivered."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import redis

from config.settings import Settings
from service.dispatch import TRAIN_TASK, Dispatcher, PublishChannel


def test_publishes_reuse_one_redis_client_and_all_arrive_in_order(
    tmp_path: Path, redis_url: str
) -> None:
    dispatcher = Dispatcher(Settings(data_dir=tmp_path, broker_url=redis_url))
    ids = [f"job_{i:03d}" for i in range(25)]
    assert all(dispatcher.train_job(job_id) for job_id in ids)
    assert (dispatcher.sent, dispatcher.failed) == (25, 0)
    with dispatcher.celery.producer_or_acquire() as producer:
        channel = producer.channel
        assert isinstance(channel, PublishChannel)
        client = channel._publisher
        assert client is not None
    assert dispatcher.train_job("job_last")
    with dispatcher.celery.producer_or_acquire() as producer:
        assert producer.channel._publisher is client
    r = redis.Redis.from_url(redis_url)
    # the first send declared the queue (once): its binding is there for the worker's routing
    assert r.smembers("_kombu.binding.weightsmith") == {b"weightsmith\x06\x16\x06\x16weightsmith"}
    raw = r.lrange("weightsmith", 0, -1)[::-1]  # LPUSH'd: oldest last
    r.close()
    assert len(raw) == 26
    headers = [json.loads(m)["headers"] for m in raw]
    assert {h["task"] for h in headers} == {TRAIN_TASK}
    assert [ast.literal_eval(h["argsrepr"])[0] for h in headers] == [*ids, "job_last"]


def test_a_dead_redis_fails_fast_and_is_not_retried_per_send(tmp_path: Path) -> None:
    dispatcher = Dispatcher(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0"))
    started = time.monotonic()
    assert dispatcher.train_job("job_a") is False
    assert dispatcher.train_job("job_b") is False  # inside the back-off: no second attempt
    assert time.monotonic() - started < 5.0
    assert (dispatcher.sent, dispatcher.failed) == (0, 2)
