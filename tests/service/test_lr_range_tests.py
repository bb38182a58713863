"""`POST /v1/jobs:lr_range_test` and its result, run by the worker's JobRunner: a short job
through the same submission path (quota, budgets), no checkpoints, a series that is the same
for the same seed, a stop by the rule, and a 422 naming the field for every bad input."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from config.settings import Settings
from store.models import Job, LrRangeTest
from tests.service.helpers import assert_problem
from worker.runner import JobRunner

SPEC = {
    "name": "digits-lr", "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 10}]},
    "optimizer": {"type": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    "training": {"epochs": 3, "batch_size": 64, "seed": 7, "validation_split": 0.2,
                 "early_stopping": {"patience": 1}},
}
BODY = {"spec": SPEC, "min_lr": 1e-4, "max_lr": 1e3, "steps": 60}


def submit(client: FlaskClient, auth: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs:lr_range_test", json=body, headers=auth)
    assert response.status_code == 202, response.data
    job: dict[str, Any] = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    return job


def run(client: FlaskClient, auth: dict[str, str], session_factory: Any, settings: Settings,
        job_id: str) -> dict[str, Any]:
    assert JobRunner(session_factory, settings, job_id, "lr-worker").run() == "succeeded"
    response = client.get(f"/v1/jobs/{job_id}/lr_range_test", headers=auth)
    assert response.status_code == 200, response.data
    out: dict[str, Any] = response.get_json()
    return out


def test_a_range_test_runs_as_a_job_stops_by_the_rule_and_stores_no_checkpoints(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    job = submit(client, auth, BODY)
    assert job["status"] == "queued"
    # digits: 1438 training rows, 23 batches of 64 an epoch: 60 steps need 3 epochs
    assert job["spec"]["training"]["epochs"] == 3 and job["progress"]["epochs"] == 3
    assert job["spec"]["training"]["lr_schedule"] is None
    assert job["spec"]["training"]["early_stopping"] is None
    assert job["spec"]["optimizer"]["learning_rate"] == 1e-4
    assert job["spec"]["optimizer"]["momentum"] == 0.9  # the rest is the spec's
    before = client.get(f"/v1/jobs/{job['id']}/lr_range_test", headers=auth).get_json()
    assert before == {"job_id": job["id"], "status": "queued", "stop_reason": None,
                      "min_lr": 1e-4, "max_lr": 1e3, "steps": 60, "series": [],
                      "min_smoothed_loss": None, "suggestion": None}

    result = run(client, auth, session_factory, settings, job["id"])
    assert result["status"] == "succeeded"
    assert result["stop_reason"] in ("loss_exceeded", "loss_not_finite")
    series = result["series"]
    assert 10 < len(series) < 60  # SGD with momentum at 1e3 blows up before the end
    smoothed = [p["smoothed_loss"] for p in series]
    if result["stop_reason"] == "loss_exceeded":
        assert smoothed[-1] > 4 * min(smoothed)
    assert all(s <= 4 * min(smoothed[:i + 1]) for i, s in enumerate(smoothed[:-1]))
    assert series[0]["lr"] == 1e-4 and series[0]["smoothed_loss"] == series[0]["loss"]
    ratio = (1e3 / 1e-4) ** (1 / 59)
    assert series[1]["lr"] == pytest.approx(1e-4 * ratio, rel=1e-12)
    assert result["min_smoothed_loss"] == min(smoothed)
    suggestion = result["suggestion"]
    assert suggestion is not None and 1e-4 < suggestion["lr"] < 1e3
    assert series[suggestion["index"]]["lr"] == suggestion["lr"]

    assert client.get(f"/v1/jobs/{job['id']}/checkpoints", headers=auth).get_json()[
        "items"] == []
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert done["status"] == "succeeded" and done["stop_reason"] == result["stop_reason"]
    again = client.post(f"/v1/jobs/{job['id']}/reproduce", headers=auth)
    assert_problem(again, 409)  # no checkpoints to compare: the same request is its reproduction

    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).status_code == 204
    with session_factory() as s:  # its result went with it
        assert s.scalar(sa.select(sa.func.count()).select_from(LrRangeTest)) == 0


def test_the_same_seed_gives_the_same_series_and_all_steps_run_when_nothing_blows_up(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    body = {**BODY, "min_lr": 1e-5, "max_lr": 1e-2, "steps": 46}  # exactly 2 epochs
    first = run(client, auth, session_factory, settings, submit(client, auth, body)["id"])
    second = run(client, auth, session_factory, settings, submit(client, auth, body)["id"])
    assert first["stop_reason"] == "steps_done" and len(first["series"]) == 46
    assert first["series"][-1]["lr"] == pytest.approx(1e-2, rel=1e-12)
    assert first["series"] == second["series"]
    assert first["suggestion"] == second["suggestion"]
    other = {**body, "spec": {**SPEC, "training": {**SPEC["training"], "seed": 8}}}
    third = run(client, auth, session_factory, settings, submit(client, auth, other)["id"])
    assert third["series"] != first["series"]


def job_count(session_factory: Any) -> int:
    with session_factory() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Job)))


@pytest.mark.parametrize(("body", "field"), [
    ({**BODY, "min_lr": 0}, "min_lr"),
    ({**BODY, "min_lr": -1}, "min_lr"),
    ({**BODY, "min_lr": 1.0, "max_lr": 1.0}, "max_lr"),
    ({**BODY, "min_lr": 2.0, "max_lr": 1.0}, "max_lr"),
    ({**BODY, "max_lr": "high"}, "max_lr"),
    ({**BODY, "steps": 5}, "steps"),
    ({**BODY, "steps": 1001}, "steps"),
    ({**BODY, "steps": 12.5}, "steps"),
    ({**BODY, "spec": None}, "spec"),
    ({"min_lr": 1e-4}, "spec"),
    ({**BODY, "spec": {**SPEC, "model": {"layers": [{"type": "dense", "units": -3}]}}},
     "spec.model.layers[0].units"),
    ({**BODY, "spec": {**SPEC, "dataset": "builtin:nope"}}, "spec.dataset"),
    ({**BODY, "start_lr": 1e-3}, "start_lr"),
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
        client: FlaskClient, auth: dict[str, str], session_factory: Any,
        body: dict[str, Any], field: str) -> None:
    before = job_count(session_factory)
    problem = assert_problem(client.post("/v1/jobs:lr_range_test", json=body, headers=auth),
                             422)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert job_count(session_factory) == before


def test_steps_that_need_more_epochs_than_the_limit_are_refused(
        client: FlaskClient, auth: dict[str, str], settings: Settings) -> None:
    # full batch: one batch an epoch, so 600 steps would be 600 epochs > max_epochs (500)
    spec = {**SPEC, "training": {**SPEC["training"], "batch_size": "full"}}
    problem = assert_problem(client.post("/v1/jobs:lr_range_test", headers=auth, json={
        **BODY, "spec": spec, "steps": 600}), 422)
    assert problem["errors"][0]["field"] == "steps"
    assert "600 epochs" in problem["errors"][0]["message"]


def test_a_range_test_is_one_of_the_tenants_jobs_under_its_quota(
        client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
        settings: Settings) -> None:
    cap = settings.limits.max_concurrent_jobs
    ids = [submit(client, auth, BODY)["id"] for _ in range(cap)]
    assert_problem(client.post("/v1/jobs:lr_range_test", json=BODY, headers=auth), 429)
    assert_problem(client.post("/v1/jobs", json=SPEC, headers=auth), 429)
    assert_problem(client.get(f"/v1/jobs/{ids[0]}/lr_range_test", headers=other_auth), 404)
    ordinary = client.post("/v1/jobs", json=SPEC, headers=other_auth).get_json()["id"]
    missing = assert_problem(
        client.get(f"/v1/jobs/{ordinary}/lr_range_test", headers=other_auth), 404)
    assert "range test" in missing["detail"]
    cancelled = client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth)
    assert cancelled.status_code in (200, 202)
    assert client.get(f"/v1/jobs/{ids[0]}/lr_range_test", headers=auth).get_json()[
        "status"] == "cancelled"


def test_budgets_storage_and_the_steps_setting_apply_as_for_any_job(
        app: Any, client: FlaskClient, auth: dict[str, str], session_factory: Any,
        settings: Settings) -> None:
    import dataclasses

    from service.app import create_app

    def with_limits(**limits: Any) -> FlaskClient:
        changed = dataclasses.replace(settings, limits=dataclasses.replace(
            settings.limits, **limits))
        return create_app(changed, testing=True).test_client()

    before = job_count(session_factory)
    problem = assert_problem(with_limits(max_training_memory_bytes=100_000).post(
        "/v1/jobs:lr_range_test", json=BODY, headers=auth), 422)
    assert [e["field"] for e in problem["errors"]] == ["spec.model.layers[0]"]
    assert "the limit is 100,000 bytes" in problem["errors"][0]["message"]

    problem = assert_problem(with_limits(max_lr_range_steps=50).post(
        "/v1/jobs:lr_range_test", json=BODY, headers=auth), 422)
    assert problem["errors"] == [{"field": "steps", "message": "must be at most 50, got 60"}]

    # one uploaded byte counts: a tenant at its storage quota starts no range test either
    csv = b"x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
    upload = client.post("/v1/datasets?name=tiny", data=csv, headers={
        **auth, "Content-Type": "text/csv"})
    assert upload.status_code == 201, upload.data
    problem = assert_problem(with_limits(max_stored_bytes=1).post(
        "/v1/jobs:lr_range_test", json=BODY, headers=auth), 413)
    assert problem["type"].endswith("storage-quota-exceeded")
    assert job_count(session_factory) == before
