"""A job's whole life through the API, trained by the worker's runner in this process:
metrics pages, checkpoints, predict (best, latest, id), and the event stream."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from config.settings import Settings
from tests.service.helpers import assert_problem, blobs, mlp_spec, upload_csv


def parse_sse(text: str) -> list[dict[str, Any]]:
    import json

    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
            and ": " in line
        )
        if "id" in fields:
            events.append({"id": int(fields["id"]), "event": fields["event"],
                           "data": json.loads(fields["data"])})
    return events


@pytest.fixture
def trained(client: FlaskClient, auth: dict[str, str], session_factory: Any,
            settings: Settings) -> dict[str, Any]:
    from worker.runner import JobRunner

    dataset = upload_csv(client, auth, n=90, features=4, classes=3)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset, epochs=3), headers=auth).get_json()
    outcome = JobRunner(session_factory, settings, job["id"], "test-worker").run()
    assert outcome == "succeeded"
    return job


def test_finished_job_reads_back(client: FlaskClient, auth: dict[str, str],
                                 trained: dict[str, Any]) -> None:
    job = client.get(f"/v1/jobs/{trained['id']}", headers=auth).get_json()
    assert job["status"] == "succeeded" and job["stop_reason"] == "epochs_done"
    assert job["progress"] == {"epoch": 3, "epochs": 3} and job["attempts"] == 1
    assert {"loss", "accuracy"} <= set(job["latest"]) and "epoch" in job["best"]
    assert job["started_at"] and job["finished_at"]
    assert_problem(client.post(f"/v1/jobs/{trained['id']}/cancel", headers=auth), 409)


def test_metrics_pages(client: FlaskClient, auth: dict[str, str],
                       trained: dict[str, Any]) -> None:
    url = f"/v1/jobs/{trained['id']}/metrics"
    everything = client.get(url, headers=auth).get_json()
    assert [m["epoch"] for m in everything["items"]] == [1, 2, 3]
    assert everything["next_cursor"] is None
    assert {"loss", "accuracy", "lr", "seconds"} <= set(everything["items"][0])
    page = client.get(f"{url}?after_epoch=1&limit=1", headers=auth).get_json()
    assert [m["epoch"] for m in page["items"]] == [2] and page["next_cursor"] == "2"
    assert page["items"][0] == everything["items"][1]


def test_checkpoints_and_predict(client: FlaskClient, auth: dict[str, str],
                                 trained: dict[str, Any]) -> None:
    ckpts = client.get(f"/v1/jobs/{trained['id']}/checkpoints", headers=auth).get_json()
    assert ckpts["items"] and ckpts["next_cursor"] is None
    kinds = {c["kind"] for c in ckpts["items"]}
    assert kinds <= {"periodic", "best", "final"} and "final" in kinds
    for c in ckpts["items"]:
        assert c["job_id"] == trained["id"] and len(c["sha256"]) == 64 and c["size_bytes"] > 0
    X, y = blobs(9, 4, 3, seed=5)
    url = f"/v1/jobs/{trained['id']}/predict"
    best = client.post(url, json={"inputs": X.tolist()}, headers=auth)
    assert best.status_code == 200, best.data
    body = best.get_json()
    outputs = np.array(body["outputs"])
    assert outputs.shape == (9, 3)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)  # softmax link
    assert body["classes"] == [int(i) for i in outputs.argmax(axis=1)]
    assert np.mean(np.array(body["classes"]) == y) >= 2 / 3  # separable blobs
    latest = client.post(url, json={"inputs": X.tolist(), "checkpoint": "latest"}, headers=auth)
    by_id = client.post(url, json={"inputs": X.tolist(),
                                   "checkpoint": latest.get_json()["checkpoint_id"]},
                        headers=auth)
    assert by_id.get_json()["outputs"] == latest.get_json()["outputs"]
    on_ckpt = client.post(f"/v1/checkpoints/{latest.get_json()['checkpoint_id']}/predict",
                          json={"inputs": X.tolist()}, headers=auth)
    assert on_ckpt.get_json()["outputs"] == latest.get_json()["outputs"]
    detail = client.get(f"/v1/checkpoints/{ckpts['items'][-1]['id']}", headers=auth).get_json()
    assert [layer["name"] for layer in detail["layers"]][:2] == ["0.weight", "0.bias"]


def test_predict_before_any_checkpoint_is_409(client: FlaskClient, auth: dict[str, str]) -> None:
    dataset = upload_csv(client, auth)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()
    response = client.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0, 0, 0, 0]]},
                           headers=auth)
    assert_problem(response, 409)


def test_event_stream_replays_and_resumes(client: FlaskClient, auth: dict[str, str],
                                          trained: dict[str, Any]) -> None:
    url = f"/v1/jobs/{trained['id']}/events"
    response = client.get(url, headers=auth)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = parse_sse(response.get_data(as_text=True))
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "status" and events[0]["data"]["status"] == "queued"
    assert [e["data"]["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3]
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    resumed = parse_sse(client.get(url, headers={**auth, "Last-Event-ID": "2"})
                        .get_data(as_text=True))
    assert resumed == events[2:]
    by_query = parse_sse(client.get(f"{url}?last_event_id=3", headers=auth)
                         .get_data(as_text=True))
    assert by_query == events[3:]
    assert_problem(client.get(url, headers={**auth, "Last-Event-ID": "x"}), 422)


def test_event_stream_heartbeats_and_ends_in_time(client: FlaskClient, auth: dict[str, str],
                                                  app: Any) -> None:
    # A second leaves room for several heartbeats even when the first poll is slow (a loaded
    # CI box once spent most of a 0.3 s stream before sending the first event).
    app.config.update(SSE_MAX_SECONDS=1.0, SSE_HEARTBEAT_SECONDS=0.1, SSE_POLL_SECONDS=0.02)
    job = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2),
                      headers=auth).get_json()
    text = client.get(f"/v1/jobs/{job['id']}/events", headers=auth).get_data(as_text=True)
    assert text.startswith("retry: ")
    assert text.count(": heartbeat") >= 1
    assert [e["data"]["status"] for e in parse_sse(text)] == ["queued"]
