"""Manifest and reproduce on real runs: same spec, data and seed give the same bits (dropout and
shuffle on), and a run that was made different is reported with the epoch where it parted."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from config.settings import Settings
from store.models import Job
from tests.service.helpers import assert_problem
from worker.runner import JobRunner

MLP = {
    "name": "digits-mlp", "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}]},
    "training": {"epochs": 3, "batch_size": 64, "shuffle": True, "seed": 11},
}
CNN = {
    "name": "digits-cnn", "dataset": "builtin:digits_images",
    "model": {"layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3,
                          "activation": "relu"},
                         {"type": "max_pool2d", "pool_size": 2}, {"type": "flatten"},
                         {"type": "dropout", "rate": 0.25}, {"type": "dense", "units": 10}]},
    "training": {"epochs": 2, "batch_size": 64, "shuffle": True, "seed": 5},
}


def run(client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        job_id: str) -> dict[str, Any]:
    assert JobRunner(session_factory, settings, job_id, "repro-worker").run() == "succeeded"
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()
    return body


@pytest.mark.parametrize("spec", [MLP, CNN], ids=["mlp", "cnn"])
def test_a_reproduction_is_identical_and_both_jobs_say_so(
        client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        spec: dict[str, Any]) -> None:
    original = client.post("/v1/jobs", json=spec, headers=auth).get_json()["id"]
    run(client, auth, session_factory, settings, original)
    response = client.post(f"/v1/jobs/{original}/reproduce", headers=auth)
    assert response.status_code == 202, response.data
    copy = response.get_json()
    assert copy["reproduction"] == {"of": original, "identical": None,
                                    "first_divergent_epoch": None, "epochs_compared": None,
                                    "checkpoints_compared": None}
    assert copy["spec"] == client.get(f"/v1/jobs/{original}", headers=auth).get_json()["spec"]

    done = run(client, auth, session_factory, settings, copy["id"])
    epochs = spec["training"]["epochs"]
    assert done["reproduction"]["of"] == original
    assert done["reproduction"]["identical"] is True
    assert done["reproduction"]["epochs_compared"] == epochs
    assert done["reproduction"]["checkpoints_compared"] >= 2  # the final and the best at least
    by = client.get(f"/v1/jobs/{original}", headers=auth).get_json()["reproduction"]
    assert by["by"] == copy["id"] and by["identical"] is True and "of" not in by

    a = client.get(f"/v1/jobs/{original}/manifest", headers=auth).get_json()
    b = client.get(f"/v1/jobs/{copy['id']}/manifest", headers=auth).get_json()
    assert a["spec_sha256"] == b["spec_sha256"] and len(a["spec_sha256"]) == 64
    assert a["dataset"] == b["dataset"] and a["dataset"]["reference"] == spec["dataset"]
    assert (a["seed"], a["dtype"]) == (spec["training"]["seed"], "float32")
    assert a["checkpoints"]["final"]["weights_sha256"] \
        == b["checkpoints"]["final"]["weights_sha256"]
    assert a["checkpoints"]["final"]["id"] != b["checkpoints"]["final"]["id"]
    assert a["checkpoints"]["best"]["epoch"] == b["checkpoints"]["best"]["epoch"]
    environment = a["environment"]
    assert environment["numpy"] and environment["python"] and environment["hostname"]
    assert environment["blas"] and environment["blas"][0]["threads"] >= 1


def test_a_run_made_different_reports_where_it_parted(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    original = client.post("/v1/jobs", json=MLP, headers=auth).get_json()["id"]
    run(client, auth, session_factory, settings, original)
    copy = client.post(f"/v1/jobs/{original}/reproduce", headers=auth).get_json()["id"]
    with session_factory.begin() as s:  # as if the reproduction ran another dtype
        job = s.get(Job, copy)
        spec = dict(job.spec)
        spec["training"] = {**spec["training"], "dtype": "float64"}
        s.execute(sa.update(Job).where(Job.id == copy).values(spec=spec))
    done = run(client, auth, session_factory, settings, copy)
    assert done["reproduction"]["identical"] is False
    assert done["reproduction"]["first_divergent_epoch"] == 1


def test_only_a_succeeded_job_of_your_own_can_be_reproduced(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str]) -> None:
    queued = client.post("/v1/jobs", json=MLP, headers=auth).get_json()["id"]
    assert_problem(client.post(f"/v1/jobs/{queued}/reproduce", headers=auth), 409)
    assert_problem(client.post(f"/v1/jobs/{queued}/reproduce", headers=other_auth), 404)
    assert_problem(client.get(f"/v1/jobs/{queued}/manifest", headers=other_auth), 404)
    manifest = client.get(f"/v1/jobs/{queued}/manifest", headers=auth).get_json()
    assert manifest["environment"] is None and manifest["checkpoints"] == {
        "final": None, "best": None}
