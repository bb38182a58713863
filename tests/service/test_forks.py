"""Forks: a child starts from exactly its parent's checkpoint; "keep" continues as a resume
would, bit for bit; overrides are checked like a new spec."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from flask.testing import FlaskClient

from config.settings import Settings
from tests.service.helpers import assert_problem, mlp_spec, upload_csv
from worker.runner import JobRunner


def weights(client: FlaskClient, auth: dict[str, str], checkpoint_id: str) -> dict[str, Any]:
    data = client.get(f"/v1/checkpoints/{checkpoint_id}/weights.npz", headers=auth).data
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if not k.startswith("__")}


def final_checkpoint(client: FlaskClient, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    items = client.get(f"/v1/jobs/{job_id}/checkpoints", headers=auth).get_json()["items"]
    return next(c for c in items if c["kind"] == "final")


def trained(client: FlaskClient, auth: dict[str, str], session_factory: Any,
            settings: Settings, spec: dict[str, Any]) -> str:
    job_id: str = client.post("/v1/jobs", json=spec, headers=auth).get_json()["id"]
    assert JobRunner(session_factory, settings, job_id, "fork-worker").run() == "succeeded"
    return job_id


def spec_of(dataset: str) -> dict[str, Any]:
    spec = mlp_spec(dataset, epochs=4)
    spec["checkpoints"] = {"every_epochs": 1, "keep_last": 4}
    spec["training"]["early_stopping"] = None
    return spec


def test_keep_continues_exactly_as_the_parent_did(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    dataset = upload_csv(client, auth)["id"]
    parent = trained(client, auth, session_factory, settings, spec_of(dataset))
    response = client.post(f"/v1/jobs/{parent}/fork", headers=auth,
                           json={"epoch": 2, "optimizer_state": "keep"})
    assert response.status_code == 202, response.data
    child = response.get_json()
    periodic = next(c for c in client.get(f"/v1/jobs/{parent}/checkpoints", headers=auth)
                    .get_json()["items"] if c["epoch"] == 2)
    assert child["parent"] == {"job_id": parent, "checkpoint_id": periodic["id"], "epoch": 2,
                               "optimizer_state": "keep"}
    run = JobRunner(session_factory, settings, child["id"], "fork-worker").run()
    assert run == "succeeded"
    # Epochs 3 and 4 again, from the epoch-2 state: the same weights, bit for bit.
    ours = weights(client, auth, final_checkpoint(client, auth, child["id"])["id"])
    theirs = weights(client, auth, final_checkpoint(client, auth, parent)["id"])
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    metrics = client.get(f"/v1/jobs/{child['id']}/metrics", headers=auth).get_json()["items"]
    parent_metrics = client.get(f"/v1/jobs/{parent}/metrics", headers=auth).get_json()["items"]
    assert [m["epoch"] for m in metrics] == [3, 4]
    assert [m["loss"] for m in metrics] == [m["loss"] for m in parent_metrics[2:]]


def test_reset_starts_from_the_checkpoints_weights_bit_for_bit(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    dataset = upload_csv(client, auth)["id"]
    parent = trained(client, auth, session_factory, settings, spec_of(dataset))
    start = final_checkpoint(client, auth, parent)
    # A learning rate of 0 trains without moving a weight: the child ends where it began.
    response = client.post(f"/v1/jobs/{parent}/fork", headers=auth, json={
        "optimizer_state": "reset", "overrides": {
            "optimizer": {"type": "sgd", "learning_rate": 0.0}, "training": {"epochs": 1}}})
    assert response.status_code == 202, response.data
    child = response.get_json()
    assert child["spec"]["optimizer"]["type"] == "sgd"
    assert child["parent"]["checkpoint_id"] == start["id"]
    JobRunner(session_factory, settings, child["id"], "fork-worker").run()
    ours = weights(client, auth, final_checkpoint(client, auth, child["id"])["id"])
    theirs = weights(client, auth, start["id"])
    for name in theirs:
        assert np.array_equal(ours[name], theirs[name]), name
    listed = client.get("/v1/jobs", headers=auth).get_json()["items"]
    assert {j["id"]: j["parent"] for j in listed}[child["id"]]["job_id"] == parent


def test_bad_forks_are_refused_naming_the_field(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        session_factory: Any, settings: Settings) -> None:
    dataset = upload_csv(client, auth)["id"]
    parent = trained(client, auth, session_factory, settings, spec_of(dataset))
    cases = [
        ({"optimizer_state": "keep", "overrides": {"optimizer": {"learning_rate": 0.5}}},
         422, "overrides.optimizer.learning_rate"),
        ({"optimizer_state": "keep", "overrides": {"training": {"epochs": 4}}},
         422, "overrides.training.epochs"),
        ({"overrides": {"model": {"layers": []}}}, 422, "overrides.model"),
        ({"overrides": {"training": {"epochs": -1}}}, 422, "training.epochs"),
        ({"overrides": {"optimizer": {"type": "adamx"}}}, 422, "optimizer.type"),
        ({"epoch": 99}, 409, "epoch"),
        ({"checkpoint_id": "ckpt_nope"}, 404, "checkpoint_id"),
    ]
    for body, status, field in cases:
        problem = assert_problem(client.post(f"/v1/jobs/{parent}/fork", json=body,
                                             headers=auth), status)
        assert field in {e["field"] for e in problem.get("errors", [])}, (body, problem)
    assert_problem(client.post(f"/v1/jobs/{parent}/fork", json={}, headers=other_auth), 404)
    assert len(client.get("/v1/jobs", headers=auth).get_json()["items"]) == 1


def test_a_fork_of_a_job_that_named_its_dataset_trains_on_the_parent_s_data(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    first = upload_csv(client, auth, name="train")["id"]
    parent = trained(client, auth, session_factory, settings, spec_of("train"))
    upload_csv(client, auth, n=30, name="train", seed=1)  # the name now means newer data
    response = client.post(f"/v1/jobs/{parent}/fork", headers=auth,
                           json={"epoch": 2, "optimizer_state": "keep"})
    assert response.status_code == 202, response.data
    child = response.get_json()
    assert child["dataset_id"] == first
    assert JobRunner(session_factory, settings, child["id"], "fork-worker").run() == "succeeded"
