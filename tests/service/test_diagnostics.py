"""`GET /v1/jobs/{id}/diagnostics` and the job's `warnings`, on jobs the real worker trained:
what the store gives back is exactly what core.train computed, warnings follow the rule across
commits, and bad queries name their field."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask.testing import FlaskClient

from config.settings import Settings
from core.datasets import load_builtin
from core.diagnostics import by_layer
from core.training import EpochReport, train
from tests.service.helpers import assert_problem
from worker.runner import JobRunner


def digits_spec(epochs: int = 3, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "diag", "dataset": "builtin:digits",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "learning_rate": 0.01},
        "training": {"epochs": epochs, "batch_size": 64, "seed": 3},
    }
    for section, values in changes.items():
        spec[section] = {**spec.get(section, {}), **values}
    return spec


def trained(client: FlaskClient, auth: dict[str, str], session_factory: Any,
            settings: Settings, spec: dict[str, Any]) -> dict[str, Any]:
    job = client.post("/v1/jobs", json=spec, headers=auth).get_json()
    assert JobRunner(session_factory, settings, job["id"], "diag-worker").run() == "succeeded"
    body: dict[str, Any] = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    return body


def test_the_stored_series_are_what_the_core_computed(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    spec = digits_spec()
    job = trained(client, auth, session_factory, settings, spec)
    response = client.get(f"/v1/jobs/{job['id']}/diagnostics", headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()

    data = load_builtin("digits")
    reports: list[EpochReport] = []
    train(spec, data.X, data.y, on_epoch=reports.append)
    expected = by_layer([(r.epoch, r.diagnostics or []) for r in reports])
    assert body == {"job_id": job["id"], "enabled": True, "layers": expected,
                    "warnings": job["warnings"]}
    assert [s["layer"] for s in body["layers"]] == [0, 1]
    assert body["layers"][0]["epochs"] == [1, 2, 3]
    assert set(body["layers"][0]) == {"layer", "type", "epochs", "weight_norm", "grad_norm",
                                      "update_ratio", "dead_fraction"}
    assert "dead_fraction" not in body["layers"][1]  # no ReLU on the output layer

    one = client.get(f"/v1/jobs/{job['id']}/diagnostics?layer=1", headers=auth).get_json()
    assert one["layers"] == expected[1:]
    later = client.get(f"/v1/jobs/{job['id']}/diagnostics?after_epoch=2",
                       headers=auth).get_json()
    assert [s["epochs"] for s in later["layers"]] == [[3], [3]]


def test_warnings_reach_the_job_across_commits(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    # One commit per epoch: the third epoch's streak is read back from the stored two.
    per_epoch = dataclasses.replace(settings, commit_interval_s=0.0)
    spec = digits_spec(epochs=4, optimizer={"type": "sgd", "learning_rate": 1e-9})
    spec["model"]["layers"][0]["bias_init"] = {"type": "constant", "value": -100.0}
    job = trained(client, auth, session_factory, per_epoch, spec)
    found = {(w["layer"], w["kind"]): w for w in job["warnings"]}
    assert set(found) == {(0, "dead_units"), (0, "update_ratio_low"), (1, "update_ratio_low")}
    assert found[(0, "dead_units")]["epoch"] == 1 and found[(0, "dead_units")]["value"] == 1.0
    assert found[(1, "update_ratio_low")]["epoch"] == 3
    assert "below 1e-05" in found[(1, "update_ratio_low")]["message"]
    body = client.get(f"/v1/jobs/{job['id']}/diagnostics", headers=auth).get_json()
    assert body["warnings"] == job["warnings"]
    listed = client.get("/v1/jobs", headers=auth).get_json()["items"]
    assert [j["warnings"] for j in listed if j["id"] == job["id"]] == [job["warnings"]]


def test_switched_off_nothing_is_stored_and_bad_queries_name_their_field(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        session_factory: Any, settings: Settings) -> None:
    job = trained(client, auth, session_factory, settings,
                  digits_spec(epochs=1, training={"diagnostics": False}))
    assert job["spec"]["training"]["diagnostics"] is False and job["warnings"] == []
    body = client.get(f"/v1/jobs/{job['id']}/diagnostics", headers=auth).get_json()
    assert body == {"job_id": job["id"], "enabled": False, "layers": [], "warnings": []}

    problem = assert_problem(
        client.get(f"/v1/jobs/{job['id']}/diagnostics?layer=2", headers=auth), 422)
    assert problem["errors"][0]["field"] == "layer"
    problem = assert_problem(
        client.get(f"/v1/jobs/{job['id']}/diagnostics?layer=-1", headers=auth), 422)
    assert "layer" in problem["errors"][0]["field"]
    assert_problem(client.get(f"/v1/jobs/{job['id']}/diagnostics", headers=other_auth), 404)
    assert_problem(client.get("/v1/jobs/job_nope/diagnostics", headers=auth), 404)
