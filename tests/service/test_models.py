"""The model registry: versions with their provenance, aliases that move with a history,
predict by alias or version equal to predict on the checkpoint, and what a version protects."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from config.settings import Settings
from store import checkpoints as store_checkpoints
from store import webhooks as store_webhooks
from store.models import Checkpoint, Dataset
from tests.service.helpers import assert_problem, blobs, mlp_spec, upload_csv
from worker.runner import JobRunner

ROWS = blobs(7)[0].tolist()


@pytest.fixture
def trained(client: FlaskClient, auth: dict[str, str], session_factory: Any,
            settings: Settings) -> dict[str, Any]:
    dataset = upload_csv(client, auth)
    job = client.post("/v1/jobs", json=mlp_spec(dataset["id"], epochs=3), headers=auth)
    job_id = job.get_json()["id"]
    assert JobRunner(session_factory, settings, job_id, "registry-worker").run() == "succeeded"
    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).get_json()["items"]
    return {"job_id": job_id, "dataset": dataset, "checkpoints": checkpoints}


def predict(client: FlaskClient, auth: dict[str, str], path: str, **body: Any) -> Any:
    response = client.post(path, json={"inputs": ROWS, **body}, headers=auth)
    assert response.status_code == 200, response.data
    return response.get_json()


def test_versions_record_where_they_came_from(
        client: FlaskClient, auth: dict[str, str], trained: dict[str, Any]) -> None:
    created = client.post("/v1/models", json={"name": "blobs", "description": "3 blobs"},
                          headers=auth)
    assert created.status_code == 201 and created.headers["Location"] == "/v1/models/blobs"
    assert_problem(client.post("/v1/models", json={"name": "blobs"}, headers=auth), 409)

    v1 = client.post("/v1/models/blobs/versions",
                     json={"job_id": trained["job_id"], "checkpoint": "best"}, headers=auth)
    assert v1.status_code == 201, v1.data
    first = trained["checkpoints"][0]
    v2 = client.post("/v1/models/blobs/versions", json={"checkpoint_id": first["id"]},
                     headers=auth).get_json()
    best = client.get(f"/v1/jobs/{trained['job_id']}/checkpoints", headers=auth).get_json()
    best_row = next(c for c in best["items"] if c["id"] == v1.get_json()["checkpoint_id"])
    assert v1.get_json() | {"created_at": None} == {
        "model": "blobs", "version": 1, "checkpoint_id": best_row["id"],
        "checkpoint_sha256": best_row["sha256"], "job_id": trained["job_id"],
        "dataset_id": trained["dataset"]["id"], "dataset_sha256": trained["dataset"]["sha256"],
        "metrics": best_row["metrics"], "aliases": [], "created_at": None}
    assert (v2["version"], v2["checkpoint_id"]) == (2, first["id"])
    listed = client.get("/v1/models/blobs/versions", headers=auth).get_json()["items"]
    assert [v["version"] for v in listed] == [1, 2]
    model = client.get("/v1/models/blobs", headers=auth).get_json()
    assert (model["latest_version"], model["aliases"]) == (2, {})
    for bad in ({}, {"job_id": trained["job_id"], "checkpoint_id": first["id"]},
                {"job_id": trained["job_id"], "checkpoint": "worst"}):
        assert_problem(client.post("/v1/models/blobs/versions", json=bad, headers=auth), 422)


def test_aliases_move_with_a_history_and_predict_follows_them(
        client: FlaskClient, auth: dict[str, str], trained: dict[str, Any],
        session_factory: Any) -> None:
    client.post("/v1/webhooks", headers=auth, json={
        "url": "http://127.0.0.1:9/hook", "events": ["model.alias_moved"]})
    client.post("/v1/models", json={"name": "blobs"}, headers=auth)
    ids = [c["id"] for c in trained["checkpoints"][:2]]
    for checkpoint_id in ids:
        client.post("/v1/models/blobs/versions", json={"checkpoint_id": checkpoint_id},
                    headers=auth)

    newest = predict(client, auth, "/v1/models/blobs/predict")
    assert newest["model"] == {"name": "blobs", "version": 2}
    assert_problem(client.post("/v1/models/blobs/predict", json={"inputs": ROWS,
                                                                 "alias": "champion"},
                               headers=auth), 404)
    assert client.put("/v1/models/blobs/aliases/champion", json={"version": 1},
                      headers=auth).get_json()["aliases"] == {"champion": 1}
    by_alias = predict(client, auth, "/v1/models/blobs/predict", alias="champion")
    by_checkpoint = predict(client, auth, f"/v1/checkpoints/{ids[0]}/predict")
    assert by_alias["outputs"] == by_checkpoint["outputs"]
    assert by_alias["classes"] == by_checkpoint["classes"]
    assert by_alias["checkpoint_id"] == ids[0] and by_alias["model"]["version"] == 1

    client.put("/v1/models/blobs/aliases/champion", json={"version": 2}, headers=auth)
    moved = predict(client, auth, "/v1/models/blobs/predict", alias="champion")
    assert moved["checkpoint_id"] == ids[1]  # the very next request
    assert predict(client, auth, "/v1/models/blobs/predict", version=1)["checkpoint_id"] \
        == ids[0]
    assert_problem(client.put("/v1/models/blobs/aliases/champion", json={"version": 9},
                              headers=auth), 404)

    history = client.get("/v1/models/blobs/aliases/champion/history",
                         headers=auth).get_json()["items"]
    assert [(h["version"], h["to"] is None) for h in history] == [(1, False), (2, True)]
    assert history[0]["to"] == history[1]["from"]
    assert client.delete("/v1/models/blobs/aliases/champion", headers=auth).status_code == 204
    history = client.get("/v1/models/blobs/aliases/champion/history",
                         headers=auth).get_json()["items"]
    assert all(h["to"] is not None for h in history)
    assert_problem(client.delete("/v1/models/blobs/aliases/champion", headers=auth), 404)

    with session_factory() as s:  # three moves, three events for the subscribed webhook
        assert len(store_webhooks.due(s, older_than_s=0)) == 3


def test_a_version_protects_its_checkpoint_and_its_data(
        client: FlaskClient, auth: dict[str, str], trained: dict[str, Any],
        session_factory: Any) -> None:
    client.post("/v1/models", json={"name": "blobs"}, headers=auth)
    held = trained["checkpoints"][0]["id"]
    client.post("/v1/models/blobs/versions", json={"checkpoint_id": held}, headers=auth)
    with session_factory.begin() as s:  # the worker's pruning skips it
        store_checkpoints.delete_many(s, [c["id"] for c in trained["checkpoints"]])
    with session_factory() as s:
        assert s.scalars(sa.select(Checkpoint.id)).all() == [held]
    with pytest.raises(sa.exc.IntegrityError), session_factory.begin() as s:
        s.execute(sa.delete(Checkpoint).where(Checkpoint.id == held))  # nor can anything else
    problem = assert_problem(
        client.delete(f"/v1/datasets/{trained['dataset']['id']}", headers=auth), 409)
    assert "blobs v1" in problem["detail"]
    with session_factory() as s:
        assert s.get(Dataset, trained["dataset"]["id"]) is not None


def test_models_are_tenant_scoped(client: FlaskClient, auth: dict[str, str],
                                  other_auth: dict[str, str], trained: dict[str, Any]) -> None:
    client.post("/v1/models", json={"name": "blobs"}, headers=auth)
    client.post("/v1/models/blobs/versions", json={"job_id": trained["job_id"]}, headers=auth)
    assert client.get("/v1/models", headers=other_auth).get_json()["items"] == []
    for method, path in (("get", "/v1/models/blobs"), ("get", "/v1/models/blobs/versions"),
                         ("get", "/v1/models/blobs/versions/1")):
        assert_problem(getattr(client, method)(path, headers=other_auth), 404)
    assert_problem(client.post("/v1/models/blobs/predict", json={"inputs": ROWS},
                               headers=other_auth), 404)
    # Another tenant's model of the same name is theirs: names are unique per tenant.
    assert client.post("/v1/models", json={"name": "blobs"}, headers=other_auth).status_code \
        == 201
    assert_problem(client.post("/v1/models/blobs/versions", json={"job_id": trained["job_id"]},
                               headers=other_auth), 404)
