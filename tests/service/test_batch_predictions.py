"""Batch predictions through the API, scored by the worker's scorer in process."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from sqlalchemy import select as sa_select

from config.settings import Settings
from tests.service.helpers import mlp_spec, npz_bytes, upload_csv
from worker.batch_scoring import score
from worker.runner import JobRunner

ROWS = 3000
CHUNK = 128


@pytest.fixture
def trained(app: OpenAPI, settings: Settings, client: FlaskClient,
            auth: dict[str, str]) -> dict[str, str]:
    """A job trained on 3,000 rows of 4 features (3 classes), and its dataset."""
    app.config["BATCH_CHUNK_ROWS"] = CHUNK
    dataset = upload_csv(client, auth, n=ROWS, features=4, classes=3)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset, epochs=2), headers=auth).get_json()
    factory = app.extensions["weightsmith"].session_factory
    assert JobRunner(factory, settings, job["id"], "test-worker").run() == "succeeded"
    return {"dataset_id": dataset, "job_id": job["id"]}


def run_worker(app: OpenAPI, settings: Settings, batch_id: str, worker: str = "w1") -> str:
    return score(app.extensions["weightsmith"].session_factory, settings, batch_id, worker)


def submit(client: FlaskClient, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/v1/batch-predictions", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == f"/v1/batch-predictions/{response.get_json()['id']}"
    return response.get_json()  # type: ignore[no-any-return]


def result_rows(client: FlaskClient, auth: dict[str, str], batch_id: str) -> list[list[str]]:
    response = client.get(f"/v1/batch-predictions/{batch_id}/result", headers=auth)
    assert response.status_code == 200, response.data
    return list(csv.reader(io.StringIO(response.data.decode())))


def test_every_row_is_scored_in_input_order_and_equals_predict(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str], broker_messages: Any) -> None:
    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    assert batch["status"] == "queued" and batch["rows_total"] == ROWS
    assert broker_messages()[-1] == {"task": "weightsmith.score_batch", "args": [batch["id"]]}
    assert run_worker(app, settings, batch["id"]) == "succeeded"

    done = client.get(f"/v1/batch-predictions/{batch['id']}", headers=auth).get_json()
    assert (done["status"], done["rows_done"], done["error_count"]) == ("succeeded", ROWS, 0)
    lines = result_rows(client, auth, batch["id"])
    assert len(lines) == ROWS

    # The whole file equals the network's own forward pass over the dataset, row by row.
    X = features(app, trained["dataset_id"])
    expected = network_of(app, done["checkpoint_id"]).predict(X)
    got = np.array([[float(v) for v in line[:3]] for line in lines])
    np.testing.assert_array_equal(got, expected)
    assert [int(line[3]) for line in lines] == expected.argmax(axis=1).tolist()

    # 200 random rows equal /predict on the same checkpoint, outputs and classes.
    picks = np.random.default_rng(0).choice(ROWS, size=200, replace=False)
    for start in range(0, 200, 100):  # the test app's predict takes 100 rows per request
        chosen = picks[start:start + 100]
        answer = client.post(f"/v1/checkpoints/{done['checkpoint_id']}/predict",
                             json={"inputs": X[chosen].tolist()}, headers=auth).get_json()
        assert answer["outputs"] == got[chosen].tolist()
        assert answer["classes"] == [int(lines[i][3]) for i in chosen]


def test_npy_result_holds_float64_outputs_in_order(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str]) -> None:
    csv_batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    npy_batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"],
                       format="npy")
    for batch in (csv_batch, npy_batch):
        assert run_worker(app, settings, batch["id"]) == "succeeded"
    response = client.get(f"/v1/batch-predictions/{npy_batch['id']}/result", headers=auth)
    outputs = np.load(io.BytesIO(response.data), allow_pickle=False)
    assert outputs.dtype == np.float64 and outputs.shape == (ROWS, 3)
    from_csv = [[float(v) for v in line[:3]] for line in result_rows(client, auth,
                                                                      csv_batch["id"])]
    np.testing.assert_array_equal(outputs, np.array(from_csv))


def network_of(app: OpenAPI, checkpoint_id: str) -> Any:
    from core.checkpoint import load_checkpoint
    from store import checkpoints as store_checkpoints

    with app.extensions["weightsmith"].session_factory() as s:
        blob = store_checkpoints.get_blob(s, checkpoint_id)
    assert blob is not None
    return load_checkpoint(blob)


def features(app: OpenAPI, dataset_id: str) -> np.ndarray:
    from service.api.data import stored_arrays
    from store.models import Dataset

    with app.extensions["weightsmith"].session_factory() as s:
        row = s.get(Dataset, dataset_id)
        assert row is not None
        arrays = stored_arrays(s, row.tenant_id, dataset_id)
        assert arrays is not None
        return np.asarray(arrays[0])


def upload_features(client: FlaskClient, auth: dict[str, str], X: np.ndarray) -> str:
    """``X`` uploaded without a target (features_only), NaN rows included."""
    response = client.post("/v1/datasets?features_only=true", data=npz_bytes(X=X),
                           headers={**auth, "Content-Type": "application/x-npz"})
    assert response.status_code == 201, response.data
    return str(response.get_json()["id"])


def tenant_of(client: FlaskClient, auth: dict[str, str], job_id: str) -> str:
    from store.models import Job

    with client.application.extensions["weightsmith"].session_factory() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.tenant_id


def test_rows_that_cannot_be_scored_are_listed_by_index_and_the_rest_are_scored(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str]) -> None:
    X = features(app, trained["dataset_id"]).copy()
    bad = [0, 5, 129, 1000, ROWS - 1]
    X[bad[0], 0] = np.nan
    X[bad[1], 2] = np.inf
    X[bad[2], 1] = -np.inf
    X[bad[3]] = np.nan
    X[bad[4], 3] = np.nan
    dataset = upload_features(client, auth, X)
    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=dataset)
    assert run_worker(app, settings, batch["id"]) == "succeeded"
    done = client.get(f"/v1/batch-predictions/{batch['id']}", headers=auth).get_json()
    assert done["rows_done"] == ROWS and done["error_count"] == len(bad)
    assert [e["row"] for e in done["errors"]] == bad
    assert all("NaN or infinity" in e["message"] for e in done["errors"])

    lines = result_rows(client, auth, batch["id"])
    assert len(lines) == ROWS
    assert all(lines[i] == ["", "", "", ""] for i in bad)
    good = np.setdiff1d(np.arange(ROWS), bad)
    expected = network_of(app, done["checkpoint_id"]).predict(X[good])
    np.testing.assert_array_equal(
        np.array([[float(v) for v in lines[i][:3]] for i in good]), expected)


def test_cancel_mid_way_stops_at_a_chunk_boundary(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import batch_scoring

    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    real = batch_scoring.score_chunk
    scored: list[int] = []

    def cancel_after_five_chunks(network: Any, chunk: np.ndarray, out: np.ndarray,
                                 first_row: int) -> list[Any]:
        scored.append(first_row)
        if len(scored) == 5:  # the user cancels while the fifth chunk is being scored
            assert client.post(f"/v1/batch-predictions/{batch['id']}/cancel",
                               headers=auth).status_code == 202
        return real(network, chunk, out, first_row)

    monkeypatch.setattr(batch_scoring, "score_chunk", cancel_after_five_chunks)
    assert run_worker(app, settings, batch["id"]) == "cancelled"
    done = client.get(f"/v1/batch-predictions/{batch['id']}", headers=auth).get_json()
    assert (done["status"], done["rows_done"]) == ("cancelled", 5 * CHUNK)
    assert scored == [i * CHUNK for i in range(5)]
    assert client.get(f"/v1/batch-predictions/{batch['id']}/result",
                      headers=auth).status_code == 409


def test_a_new_claim_resumes_at_the_first_missing_chunk(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker dies after three chunks; the next one scores the rest, each row once."""
    from datetime import timedelta

    from store import batches
    from store.columns import utcnow
    from worker import batch_scoring

    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    real = batch_scoring.score_chunk
    first_rows: list[int] = []

    class Died(Exception):
        pass

    def dies_on_the_fourth(network: Any, chunk: np.ndarray, out: np.ndarray,
                           first_row: int) -> list[Any]:
        first_rows.append(first_row)
        if len(first_rows) == 4:
            raise Died
        return real(network, chunk, out, first_row)

    monkeypatch.setattr(batch_scoring, "score_chunk", dies_on_the_fourth)
    with pytest.raises(Died):
        run_worker(app, settings, batch["id"], "w1")
    monkeypatch.setattr(batch_scoring, "score_chunk", real)
    factory = app.extensions["weightsmith"].session_factory
    # While w1's lease is fresh nobody else may take the batch.
    assert run_worker(app, settings, batch["id"], "w2") == "not_claimed"
    with factory.begin() as s:
        row = s.get(batches.BatchPrediction, batch["id"])
        assert row is not None and row.rows_done == 3 * CHUNK
        row.heartbeat_at = utcnow() - timedelta(seconds=settings.lease_timeout_s + 1)
    assert run_worker(app, settings, batch["id"], "w2") == "succeeded"
    done = client.get(f"/v1/batch-predictions/{batch['id']}", headers=auth).get_json()
    assert (done["rows_done"], done["attempts"]) == (ROWS, 2)
    lines = result_rows(client, auth, batch["id"])
    expected = network_of(app, done["checkpoint_id"]).predict(features(app,
                                                                      trained["dataset_id"]))
    np.testing.assert_array_equal(np.array([[float(v) for v in ln[:3]] for ln in lines]),
                                  expected)


def test_a_model_alias_is_resolved_at_submission(
        client: FlaskClient, auth: dict[str, str], trained: dict[str, str]) -> None:
    assert client.post("/v1/models", json={"name": "blobs"}, headers=auth).status_code == 201
    version = client.post("/v1/models/blobs/versions", json={"job_id": trained["job_id"]},
                          headers=auth).get_json()
    assert client.put("/v1/models/blobs/aliases/champion", json={"version": 1},
                      headers=auth).status_code == 200
    batch = submit(client, auth, model={"name": "blobs", "alias": "champion"},
                   dataset_id=trained["dataset_id"])
    assert batch["checkpoint_id"] == version["checkpoint_id"]
    missing = client.post("/v1/batch-predictions", headers=auth, json={
        "model": {"name": "blobs", "alias": "nobody"}, "dataset_id": trained["dataset_id"]})
    assert missing.status_code == 404


def test_a_dataset_of_another_width_is_refused_naming_the_field(
        client: FlaskClient, auth: dict[str, str], trained: dict[str, str]) -> None:
    other = upload_csv(client, auth, n=30, features=5, classes=3, name="wide")["id"]
    response = client.post("/v1/batch-predictions", headers=auth, json={
        "job_id": trained["job_id"], "dataset_id": other})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "dataset_id"
    assert "[5]" in response.get_json()["detail"] and "[4]" in response.get_json()["detail"]
    both = client.post("/v1/batch-predictions", headers=auth, json={
        "job_id": trained["job_id"], "checkpoint_id": "ckpt_x", "dataset_id": other})
    assert both.status_code == 422


def test_another_tenant_sees_nothing(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        trained: dict[str, str]) -> None:
    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    for method, suffix in (("get", ""), ("get", "/result"), ("post", "/cancel"),
                           ("get", "/events")):
        response = getattr(client, method)(f"/v1/batch-predictions/{batch['id']}{suffix}",
                                           headers=other_auth)
        assert response.status_code == 404, suffix
    response = client.post("/v1/batch-predictions", headers=other_auth, json={
        "job_id": trained["job_id"], "dataset_id": trained["dataset_id"]})
    assert response.status_code == 404


def test_events_report_progress_and_resume_after_last_event_id(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str]) -> None:
    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    assert run_worker(app, settings, batch["id"]) == "succeeded"
    stream = client.get(f"/v1/batch-predictions/{batch['id']}/events", headers=auth)
    text = stream.data.decode()
    assert f"id: {ROWS}\nevent: progress\n" in text
    assert f"id: {ROWS + 1}\nevent: status\n" in text and '"succeeded"' in text
    again = client.get(f"/v1/batch-predictions/{batch['id']}/events",
                       headers={**auth, "Last-Event-ID": str(ROWS)}).data.decode()
    assert "event: progress" not in again and f"id: {ROWS + 1}\nevent: status" in again
    assert "event:" not in client.get(f"/v1/batch-predictions/{batch['id']}/events", headers={
        **auth, "Last-Event-ID": str(ROWS + 1)}).data.decode()


def test_success_enqueues_its_webhook_event_with_the_batch(
        app: OpenAPI, settings: Settings, client: FlaskClient, auth: dict[str, str],
        trained: dict[str, str]) -> None:
    import json

    from store.models import WebhookDelivery

    hook = client.post("/v1/webhooks", headers=auth, json={
        "url": "https://hooks.example.com/in", "events": ["batch_prediction.succeeded"]})
    assert hook.status_code == 201, hook.data
    batch = submit(client, auth, job_id=trained["job_id"], dataset_id=trained["dataset_id"])
    with app.extensions["weightsmith"].session_factory() as s:
        assert s.scalars(sa_select(WebhookDelivery)).all() == []
    assert run_worker(app, settings, batch["id"]) == "succeeded"
    with app.extensions["weightsmith"].session_factory() as s:
        (delivery,) = s.scalars(sa_select(WebhookDelivery)).all()
    body = json.loads(delivery.body)
    assert body["type"] == "batch_prediction.succeeded"
    assert (body["data"]["id"], body["data"]["status"], body["data"]["rows_done"]) == (
        batch["id"], "succeeded", ROWS)
