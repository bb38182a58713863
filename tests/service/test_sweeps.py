"""`/v1/sweeps`: submit (422s, idempotency), list, read, trials, cancel, events; the trials
run in process through the worker's own step and runner."""

from __future__ import annotations

import copy
from typing import Any

from flask.testing import FlaskClient

from config.settings import Settings
from tests.service.helpers import assert_problem
from tests.worker.sweep_helpers import Queue
from worker import webhooks
from worker.celery_app import DELIVER_WEBHOOK_TASK, SWEEP_STEP_TASK, TRAIN_TASK
from worker.runner import JobRunner
from worker.sweep_tasks import after_job, run_step

BODY: dict[str, Any] = {
    "name": "moons-sweep",
    "base": {
        "dataset": "builtin:moons",
        "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                             {"type": "dense", "units": 2}]},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "training": {"epochs": 3, "batch_size": 32, "validation_split": 0.25},
    },
    "space": {"optimizer.learning_rate": {"log_uniform": [1e-3, 0.1]},
              "model.layers[0].units": {"choice": [4, 8]}},
    "search": {"method": "random", "seed": 7, "max_trials": 3, "max_concurrent": 2},
    "scheduler": {"type": "asha", "metric": "val_accuracy", "grace_epochs": 1,
                  "reduction_factor": 3},
}


def body(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BODY)
    out.update(changes)
    return out


def test_submit_is_202_with_location_and_sends_a_step(client: FlaskClient,
                                                      auth: dict[str, str],
                                                      broker_messages: Any) -> None:
    response = client.post("/v1/sweeps", json=body(), headers=auth)
    assert response.status_code == 202, response.data[:500]
    out = response.get_json()
    assert response.headers["Location"] == f"/v1/sweeps/{out['id']}"
    assert out["status"] == "queued" and out["name"] == "moons-sweep"
    assert out["trials"] == {"total": 0, "queued": 0, "running": 0, "succeeded": 0,
                             "pruned": 0, "failed": 0}
    assert out["epochs_budget"] == 9 and out["best"] is None
    assert out["spec"]["search"] == BODY["search"]
    assert broker_messages() == [{"task": SWEEP_STEP_TASK, "args": [out["id"]]}]


def test_the_idempotency_key_replays_or_conflicts(client: FlaskClient,
                                                  auth: dict[str, str]) -> None:
    headers = {**auth, "Idempotency-Key": "sweep-1"}
    first = client.post("/v1/sweeps", json=body(), headers=headers)
    again = client.post("/v1/sweeps", json=body(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/sweeps", json=body(name="other"), headers=headers)
    assert_problem(other, 409)
    assert len(client.get("/v1/sweeps", headers=auth).get_json()["items"]) == 1


def test_bad_bodies_are_422_naming_the_field_and_store_nothing(
        client: FlaskClient, auth: dict[str, str]) -> None:
    cases = [
        (body(space={"optimizer.nope": {"uniform": [0, 1]}}), 'space["optimizer.nope"]'),
        (body(space={"optimizer.learning_rate": {"uniform": [0.5, 0.1]}}),
         'space["optimizer.learning_rate"]'),
        (body(space={"training.epochs": {"choice": [2, 3], "when": {"x.y": 1}}}),
         'space["training.epochs"]'),
        (body(search={"method": "random", "max_trials": 100_000}), "search.max_trials"),
        (body(base={**BODY["base"], "dataset": "builtin:nope"}), "base.dataset"),
        # a corner the dry run refuses: 2 x 100,000 units pass the 200,000-parameter limit
        (body(space={"model.layers[0].units": {"choice": [4, 100_000]}}),
         'space["model.layers[0].units"]'),
    ]
    for sent, field in cases:
        problem = assert_problem(client.post("/v1/sweeps", json=sent, headers=auth), 422)
        assert problem["errors"][0]["field"] == field, problem
    corner = assert_problem(client.post("/v1/sweeps", json=cases[-1][0], headers=auth), 422)
    assert "{model.layers[0].units=100000}" in corner["errors"][0]["message"]
    assert "parameters" in corner["errors"][0]["message"]
    assert "the limit is 200,000" in corner["errors"][0]["message"]
    assert client.get("/v1/sweeps", headers=auth).get_json()["items"] == []


def test_lists_are_cursor_pages_and_tenants_are_apart(client: FlaskClient,
                                                      auth: dict[str, str],
                                                      other_auth: dict[str, str]) -> None:
    ids = [client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
           for _ in range(3)]
    first = client.get("/v1/sweeps?limit=2", headers=auth).get_json()
    second = client.get(f"/v1/sweeps?limit=2&cursor={first['next_cursor']}",
                        headers=auth).get_json()
    assert [s["id"] for s in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert_problem(client.get(f"/v1/sweeps/{ids[0]}", headers=other_auth), 404)
    assert client.get("/v1/sweeps", headers=other_auth).get_json()["items"] == []


def run_sweep(app: Any, settings: Settings, sweep_id: str, *,
              steps_before: int = 0) -> list[str]:
    """Deliver the sweep's messages in process, as workers would; the messages' names.
    ``steps_before``: duplicate steps sent at once (a redelivery, reconcile)."""
    sessions = app.extensions["weightsmith"].session_factory
    queue = Queue()
    queue.sent.extend([(SWEEP_STEP_TASK, sweep_id)] * (1 + steps_before))
    names = []
    for _ in range(200):
        if not queue.sent:
            return names
        name, arg = queue.sent.pop(0)
        names.append(name)
        if name == TRAIN_TASK:
            JobRunner(sessions, settings, arg, "w1").run()
            after_job(queue, sessions, settings, arg)
        elif name == DELIVER_WEBHOOK_TASK:
            webhooks.deliver(sessions, settings, arg)
        else:
            assert name == SWEEP_STEP_TASK
            run_step(queue, sessions, settings, arg)
    raise AssertionError(f"messages left: {queue.sent[:5]}")


def test_a_sweep_runs_to_the_end_and_reads_back(app: Any, client: FlaskClient,
                                                settings: Settings,
                                                auth: dict[str, str]) -> None:
    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    run_sweep(app, settings, sweep_id)
    sweep = client.get(f"/v1/sweeps/{sweep_id}", headers=auth).get_json()
    assert sweep["status"] == "succeeded"
    assert sweep["trials"]["total"] == 3
    assert sweep["trials"]["succeeded"] + sweep["trials"]["pruned"] == 3
    by_index = client.get(f"/v1/sweeps/{sweep_id}/trials", headers=auth).get_json()["items"]
    assert [t["index"] for t in by_index] == [0, 1, 2]
    best_first = client.get(f"/v1/sweeps/{sweep_id}/trials?order=best",
                            headers=auth).get_json()["items"]
    values = [t["best"]["val_accuracy"] for t in best_first]
    assert values == sorted(values, reverse=True)
    assert best_first[0]["index"] == sweep["best"]["trial"]
    assert sweep["best"]["value"] == values[0]
    page = client.get(f"/v1/sweeps/{sweep_id}/trials?limit=2", headers=auth).get_json()
    rest = client.get(f"/v1/sweeps/{sweep_id}/trials?limit=2&cursor={page['next_cursor']}",
                      headers=auth).get_json()
    assert [t["index"] for t in page["items"] + rest["items"]] == [0, 1, 2]
    job = client.get(f"/v1/jobs/{by_index[0]['job_id']}", headers=auth).get_json()
    assert job["sweep_id"] == sweep_id
    assert job["spec"]["optimizer"]["learning_rate"] == \
        by_index[0]["params"]["optimizer.learning_rate"]
    assert_problem(client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=auth), 409)
    stream = client.get(f"/v1/sweeps/{sweep_id}/events", headers=auth).get_data(as_text=True)
    kinds = [line[7:] for line in stream.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "status" and kinds[-1] == "sweep_finished"
    assert kinds.count("trial_started") == 3 and kinds.count("trial_finished") == 3
    assert "rung_reported" in kinds and "new_best" in kinds
    resumed = client.get(f"/v1/sweeps/{sweep_id}/events",
                         headers={**auth, "Last-Event-ID": "3"}).get_data(as_text=True)
    ids = [int(line[4:]) for line in resumed.splitlines() if line.startswith("id: ")]
    assert ids[0] == 4 and ids == list(range(4, 4 + len(ids)))


def test_cancel_is_202_and_the_sweep_ends_cancelled(app: Any, client: FlaskClient,
                                                    settings: Settings,
                                                    auth: dict[str, str]) -> None:
    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    response = client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=auth)
    assert response.status_code == 202
    run_sweep(app, settings, sweep_id)
    sweep = client.get(f"/v1/sweeps/{sweep_id}", headers=auth).get_json()
    assert (sweep["status"], sweep["stop_reason"], sweep["trials"]["total"]) == (
        "cancelled", "cancelled", 0)


def test_the_event_stream_reads_the_same_both_ways(app: Any, client: FlaskClient,
                                                   settings: Settings,
                                                   auth: dict[str, str]) -> None:
    """Synchronously (a WSGI server) and asynchronously (the ASGI front), the same bytes."""
    import asyncio

    from service.event_stream import StreamTiming
    from service.sweep_stream import SweepEventStream

    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    run_sweep(app, settings, sweep_id)
    sessions = app.extensions["weightsmith"].session_factory
    timing = StreamTiming(5.0, 1.0, 0.02)

    async def follow() -> bytes:
        return b"".join([chunk async for chunk in SweepEventStream(sessions, sweep_id, 2,
                                                                   timing)])

    sync = b"".join(SweepEventStream(sessions, sweep_id, 2, timing))
    assert asyncio.run(follow()) == sync
    assert sync.count(b"event: trial_finished") == 3 and b"id: 3\n" in sync
    assert b"id: 2\n" not in sync


def test_a_waiting_stream_sends_heartbeats_then_follows_the_sweep_to_its_end(
        app: Any, client: FlaskClient, settings: Settings, auth: dict[str, str]) -> None:
    """Behind the ASGI front: the job stream's loop with the sweep's poll and wait."""
    import asyncio

    from service.event_stream import StreamTiming
    from service.sweep_stream import SweepEventStream

    sweep_id = client.post("/v1/sweeps", json=body(), headers=auth).get_json()["id"]
    sessions = app.extensions["weightsmith"].session_factory
    timing = StreamTiming(30.0, 0.05, 0.02)

    def cancel_and_step() -> None:
        assert client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=auth).status_code == 202
        run_step(Queue(), sessions, settings, sweep_id)

    async def follow() -> list[bytes]:
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        async for chunk in SweepEventStream(sessions, sweep_id, 0, timing):
            chunks.append(chunk)
            if chunk == b": heartbeat\n\n" and chunks.count(chunk) == 2:
                await loop.run_in_executor(None, cancel_and_step)
        return chunks

    chunks = asyncio.run(asyncio.wait_for(follow(), 20))
    text = b"".join(chunks).decode()
    assert text.startswith("retry: ") and "event: status" in text
    assert text.index(": heartbeat") < text.index("event: sweep_finished")
    assert text.rstrip().endswith('"stop_reason":"cancelled"}')  # the stream ended there


def test_a_body_past_the_spec_byte_limit_is_413_before_parsing(client: FlaskClient,
                                                               auth: dict[str, str]) -> None:
    huge = body(space={"name": {"choice": ["x" * 300_000]}})  # past 256 KiB
    problem = assert_problem(client.post("/v1/sweeps", json=huge, headers=auth), 413)
    assert "WEIGHTSMITH_MAX_SPEC_BYTES" in problem["detail"]
