"""Bad broker messages are logged and dropped; the worker lives on (issue 19).

Real workers on both transports (the folder broker and Redis) meet an empty message, bytes
that are not JSON, JSON that is not an envelope, an envelope kombu cannot decode, and
envelopes Celery refuses (no task, an unknown task, a job that does not exist); then a real
job still runs, by the same worker process.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.worker.conftest import Backend, create_job, wait_for, xor_spec
from worker.transports import FilesystemTransport, malformed

QUEUE = "weightsmith"


def template(b: Backend) -> dict[str, Any]:
    """A real train_job envelope, as Celery sends it, taken back off the broker."""
    b.send("job_does_not_exist")
    raw = take_one(b)
    envelope = json.loads(raw)
    assert malformed(envelope) is None
    return envelope


def take_one(b: Backend) -> bytes:
    if b.settings.is_embedded_broker:
        (path,) = sorted((b.settings.broker_dir / "queue").glob(f"*.{QUEUE}.msg"))
        data = path.read_bytes()
        path.unlink()
        return data
    import redis

    client = redis.Redis.from_url(b.settings.broker_url)
    data = client.rpop(QUEUE)
    assert isinstance(data, bytes)
    return data


def inject(b: Backend, raw: bytes, n: int) -> None:
    """Put `raw` on the queue ahead of anything sent later."""
    if b.settings.is_embedded_broker:
        folder = b.settings.broker_dir / "queue"
        (folder / f"{n:04d}_{uuid.uuid4()}.{QUEUE}.msg").write_bytes(raw)
        return
    import redis

    redis.Redis.from_url(b.settings.broker_url).lpush(QUEUE, raw)


def bad_messages(envelope: dict[str, Any]) -> dict[str, bytes]:
    def with_body(body: Any, **changes: Any) -> bytes:
        encoded = base64.b64encode(json.dumps(body).encode()).decode()
        return json.dumps({**envelope, "body": encoded, **changes}).encode()

    headers = envelope["headers"]
    return {
        "empty": b"",
        "not JSON": b"\x00\xff{{ not json",
        "JSON, not an object": b"[1, 2, 3]",
        "no properties": json.dumps({"body": "e30=", "headers": {}}).encode(),
        "no delivery info": json.dumps({**envelope, "properties": {"delivery_tag": "x"}}).encode(),
        "body not base64": json.dumps({**envelope, "body": "%%% not base64"}).encode(),
        "body not JSON": json.dumps({**envelope, "body": base64.b64encode(b"\x01{").decode(),
                                     "headers": {}}).encode(),
        "unknown task": with_body([[], {}, {}], headers={**headers, "task": "nope.nope"}),
        "unknown job": with_body([["job_01ZZZZZZZZZZZZZZZZZZZZZZZZ"], {}, {}]),
    }


def test_bad_messages_are_dropped_and_the_worker_lives_on(backend: Backend) -> None:
    b = backend
    envelope = template(b)
    bad = bad_messages(envelope)
    for n, raw in enumerate(bad.values()):
        inject(b, raw, n)
    worker = b.start_worker("w1")
    job_id = create_job(b, xor_spec(epochs=2))
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status == "succeeded", timeout=90,
                   what="the job after the bad messages")
    assert job.attempts == 1
    assert worker.poll() is None, b.logs()  # the same worker process ran it
    log = (b.log_dir / "w1.log").read_text(errors="replace")
    assert log.count("dropped a malformed message") == 6, log  # the rest are Celery's to refuse
    for refused in ("Can't decode message body", "Received unregistered task of type 'nope.nope'",
                    "job job_01ZZZZZZZZZZZZZZZZZZZZZZZZ: over (finished, cancelled or deleted); "
                    "message dropped"):
        assert refused in log
    if b.settings.is_embedded_broker:
        assert list((b.settings.broker_dir / "queue").glob(f"*.{QUEUE}.msg")) == []
    else:  # nothing left for a restarted worker to meet again
        import redis

        client = redis.Redis.from_url(b.settings.broker_url)
        assert client.llen(QUEUE) == 0
        # the live job's own message is acked just after its task returns
        deadline = time.monotonic() + 10
        while client.hlen("unacked") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.hlen("unacked") == 0


def test_malformed_names_what_kombu_could_not_read() -> None:
    good = {"body": base64.b64encode(b"[]").decode(), "headers": {"task": "t"},
            "content-type": "application/json", "content-encoding": "utf-8",
            "properties": {"delivery_tag": "t1", "body_encoding": "base64",
                           "delivery_info": {"exchange": "", "routing_key": QUEUE}}}
    assert malformed(good) is None
    assert malformed([1]) == "the envelope is a list, not an object"
    assert malformed({**good, "properties": None}) == "no properties"
    assert malformed({**good, "headers": []}) == "headers are not an object"
    assert malformed({**good, "body": "%%"}) == "the body is not base64"
    props = {**good["properties"], "body_encoding": "rot13"}
    assert malformed({**good, "properties": props}) == "unknown body_encoding 'rot13'"


def test_the_folder_broker_never_shows_a_reader_a_partial_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The message is complete under a name no reader lists before it takes its real name."""
    from kombu import Connection

    name = f"atomic-{uuid.uuid4().hex}"  # kombu keeps declarations process-wide: a new one
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
               "control_folder": str(tmp_path / "control")}
    renames: list[tuple[list[str], dict[str, Any]]] = []
    real_replace = os.replace

    def watching_replace(source: str, target: str) -> None:
        listed = sorted(p.name for p in folder.glob(f"*.{name}.msg"))  # what a reader sees
        renames.append((listed, json.loads(Path(source).read_bytes())))
        real_replace(source, target)

    monkeypatch.setattr("worker.transports.os.replace", watching_replace)
    with Connection("filesystem://", transport=FilesystemTransport,
                    transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        queue.put({"job": 1})
        ((listed, written),) = renames
        assert listed == []  # until the rename, nothing a reader would take
        assert base64.b64decode(written["body"]) == b'{"job": 1}'  # and then all of it
        message = queue.get(timeout=1)
        assert message.payload == {"job": 1}
        message.ack()  # an unacked message is put back when the channel closes
        queue.close()
    assert sorted(p.name for p in folder.iterdir()) == []  # no temporary file left behind


def test_messages_for_jobs_that_are_over_are_dropped_before_the_pool(backend: Backend) -> None:
    """200 stale messages (a cancelled job, a finished one, a deleted one) are acked by the
    consumer; the pool runs only the live job, once."""
    from store import jobs
    from store.models import Job

    b = backend
    cancelled = create_job(b, xor_spec(epochs=2))
    with b.sessions.begin() as s:
        jobs.cancel(s, s.get(Job, cancelled).tenant_id, cancelled)
    stale = [cancelled, "job_01ZZZZZZZZZZZZZZZZZZZZZZZZ"] * 100
    for job_id in stale:
        b.send(job_id)
    live = create_job(b, xor_spec(epochs=2))
    b.send(live)
    b.start_worker("w1")
    assert wait_for(b, live, lambda j: j.status == "succeeded", timeout=120,
                    what="the live job behind the stale messages").attempts == 1
    log = (b.log_dir / "w1.log").read_text(errors="replace")
    assert log.count("message dropped") == len(stale), log[-3000:]
    assert log.count("] received") == 1, log[-3000:]  # the live job's message only
    assert "skipped" not in log
