"""Dispatch to Redis: one long-lived client per publishing channel, every message delivered."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

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


def test_a_dispatched_message_is_the_one_celerys_send_task_makes(
    tmp_path: Path, redis_url: str
) -> None:
    """Dispatcher publishes through Celery's message API but not `send_task` (a third of its
    CPU went to routing and results this app has none of): the worker must see no difference."""
    dispatcher = Dispatcher(Settings(data_dir=tmp_path, broker_url=redis_url))
    assert dispatcher.train_job("job_a")
    dispatcher.celery.send_task(TRAIN_TASK, args=["job_a"], retry=False)
    r = redis.Redis.from_url(redis_url)
    ours, celerys = (json.loads(m) for m in r.lrange("weightsmith", 0, -1)[::-1])
    r.close()

    def comparable(message: dict[str, Any]) -> dict[str, Any]:
        for section, name in [("headers", "id"), ("headers", "root_id"),
                              ("properties", "correlation_id"), ("properties", "delivery_tag"),
                              ("properties", "reply_to")]:
            message[section].pop(name)
        return message

    assert ours["headers"]["id"] == ours["headers"]["root_id"] != celerys["headers"]["id"]
    assert comparable(ours) == comparable(celerys)
