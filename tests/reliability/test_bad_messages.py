"""A bad broker message never takes the service down (issue 19), in both modes.

Embedded: `weightsmith serve` meets an empty message file (what kombu's own writer could leave
for a reader), bytes that are not JSON and an envelope kombu cannot decode; production: the
same entries pushed onto the Redis queue in front of a running `celery worker`. The worker
logs and drops each, keeps running (same pid), runs the next job, and `/readyz` answers 200.
Then, embedded, the worker is killed outright: the supervisor starts it again and the service
stays up (it used to stop the API and beat too).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.conftest import BackendFactory
from tests.reliability.processes import ApiProcess
from tests.worker.conftest import xor_spec
from tests.worker.test_serve import Serve, children_of

QUEUE = "weightsmith"
BAD = {
    "empty": b"",
    "not JSON": b"\x00\xff{{ not json",
    "not an envelope": json.dumps({"body": "e30=", "headers": {}}).encode(),
}


def wait_job(url: str, headers: dict[str, str], job_id: str, logs: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (job := httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json())["status"] \
            not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, logs()
        time.sleep(0.3)
    return job


def run_a_job(url: str, headers: dict[str, str], logs: Any) -> None:
    created = httpx.post(f"{url}/v1/jobs", json=xor_spec(epochs=2), headers=headers)
    assert created.status_code == 202, created.text
    job = wait_job(url, headers, created.json()["id"], logs)
    assert (job["status"], job["attempts"]) == ("succeeded", 1), job


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_embedded_serve_drops_bad_messages_and_restarts_a_killed_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    queue = data_dir / "broker" / "queue"
    queue.mkdir(parents=True)
    for n, raw in enumerate(BAD.values()):  # waiting before the worker even starts
        (queue / f"{n:04d}_{uuid.uuid4()}.{QUEUE}.msg").write_bytes(raw)
    serve = Serve(data_dir)
    try:
        serve.wait_ready()
        headers = {"Authorization": f"Bearer {(data_dir / 'api_key').read_text().strip()}"}
        children = children_of(serve.proc.pid)
        (worker,) = [pid for pid in children if "--pool=prefork" in command_of(pid)]
        run_a_job(serve.url, headers, serve.output)
        assert children_of(serve.proc.pid) == children  # nothing died, nothing restarted
        assert serve.output().count("dropped a malformed message") == len(BAD), serve.output()
        assert list(queue.glob(f"*.{QUEUE}.msg")) == []
        assert httpx.get(f"{serve.url}/readyz").status_code == 200

        os.killpg(worker, signal.SIGKILL)  # the worker and its pool, as an OOM kill might
        deadline = time.monotonic() + 60
        while worker in children_of(serve.proc.pid) or len(children_of(serve.proc.pid)) < 3:
            assert serve.proc.poll() is None, serve.output()
            assert time.monotonic() < deadline, serve.output()
            time.sleep(0.2)
        assert "worker exited with code -9; starting it again in 1 s" in serve.output()
        assert httpx.get(f"{serve.url}/readyz").status_code == 200
        run_a_job(serve.url, headers, serve.output)
    finally:
        serve.kill()


def test_production_worker_drops_bad_redis_messages(
    production: BackendFactory, tmp_path: Path,
) -> None:
    import redis

    from store import keys, tenants

    b = production()
    client = redis.Redis.from_url(b.settings.broker_url)
    for raw in BAD.values():
        client.lpush(QUEUE, raw)
    worker = b.start_worker("w1")
    api = ApiProcess(b.env, b.log_dir)
    api.start()
    try:
        with b.sessions.begin() as s:
            key = keys.create_key(s, tenants.get_or_create(s, "acme").id)[0]
        headers = {"Authorization": f"Bearer {key}"}
        run_a_job(api.url, headers, b.logs)
        assert worker.poll() is None, b.logs()
        log = (b.log_dir / "w1.log").read_text(errors="replace")
        assert log.count("dropped a malformed message") == len(BAD), log
        assert client.llen(QUEUE) == 0 and client.hlen("unacked") == 0
        assert httpx.get(f"{api.url}/readyz").status_code == 200
    finally:
        api.kill()
