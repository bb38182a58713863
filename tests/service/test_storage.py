"""Storage quotas that count everything and can be recovered from (issue 19).

Stored bytes are datasets, checkpoints and imports; while they are at or over the quota a
submit or resume is a 413 and nothing is stored. DELETE /v1/jobs/{id} (a finished job, with
its checkpoints, metrics and events) and DELETE /v1/checkpoints/{id} free space, and refuse
(409) what a queued or running job needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config.settings import Settings
from service.app import create_app
from tests.service.conftest import TEST_LIMITS
from tests.service.helpers import assert_problem, mlp_spec
from worker.runner import JobRunner

SPEC = mlp_spec("builtin:xor", outputs=2, epochs=3)


def trained_job(app: OpenAPI, client: FlaskClient, auth: dict[str, str]) -> dict[str, Any]:
    """A job run to the end by the worker's runner in process, with its checkpoints."""
    services = app.extensions["weightsmith"]
    job = client.post("/v1/jobs", json=SPEC, headers=auth).get_json()
    assert JobRunner(services.session_factory, services.settings, job["id"], "w").run() \
        == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()


def rows(app: OpenAPI, table: str, job_id: str | None = None) -> int:
    with app.extensions["weightsmith"].session_factory() as s:
        query = f"SELECT count(*) FROM {table}"
        if job_id is not None:
            query += " WHERE job_id = :job"
        return int(s.execute(sa.text(query), {"job": job_id}).scalar_one())


def stored(app: OpenAPI, auth: dict[str, str]) -> int:
    from store import keys, usage

    with app.extensions["weightsmith"].session_factory() as s:
        tenant = keys.tenant_for_key(s, auth["Authorization"].split()[1])
        return usage.stored_bytes(s, str(tenant))


def test_a_full_quota_refuses_submit_and_resume_until_a_job_is_deleted(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str], settings: Settings,
    broker_messages: Any, tmp_path: Path,
) -> None:
    done = trained_job(app, client, auth)
    cancelled = client.post("/v1/jobs", json=SPEC, headers=auth).get_json()
    assert client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth).status_code == 200
    used = stored(app, auth)
    assert used > 0  # the checkpoints count
    sent = len(broker_messages())
    full = create_app(dataclasses.replace(
        settings, limits=dataclasses.replace(TEST_LIMITS, max_stored_bytes=used)), testing=True)
    full_client = full.test_client()
    body = assert_problem(full_client.post("/v1/jobs", json=SPEC, headers=auth), 413)
    assert body["type"].endswith("storage-quota-exceeded")
    assert f"{used} bytes stored (datasets, checkpoints, imports)" in body["detail"]
    body = assert_problem(full_client.post(f"/v1/jobs/{cancelled['id']}/resume",
                                           headers=auth), 413)
    assert body["type"].endswith("storage-quota-exceeded")
    for path in (f"/v1/jobs/{done['id']}/fork", f"/v1/jobs/{done['id']}/reproduce"):
        body = assert_problem(full_client.post(path, json={"optimizer_state": "reset"}
                                               if path.endswith("fork") else None,
                                               headers=auth), 413)
        assert body["type"].endswith("storage-quota-exceeded"), path
    assert len(client.get("/v1/jobs", headers=auth).get_json()["items"]) == 2  # no new job
    assert full_client.get(f"/v1/jobs/{cancelled['id']}", headers=auth).get_json()[
        "status"] == "cancelled"
    assert len(broker_messages()) == sent

    assert full_client.delete(f"/v1/jobs/{done['id']}", headers=auth).status_code == 204
    assert stored(app, auth) == 0
    for table in ("checkpoints", "metrics", "job_events", "job_leases"):
        assert rows(app, table, done["id"]) == 0, table
    assert rows(app, "checkpoint_parts") == 0  # the trigger took the bytes with the rows
    assert_problem(full_client.get(f"/v1/jobs/{done['id']}", headers=auth), 404)
    assert full_client.post("/v1/jobs", json=SPEC, headers=auth).status_code == 202


def test_only_finished_jobs_can_be_deleted(
    client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
) -> None:
    job = client.post("/v1/jobs", json=SPEC, headers=auth).get_json()
    body = assert_problem(client.delete(f"/v1/jobs/{job['id']}", headers=auth), 409)
    assert "is queued; only a finished job can be deleted" in body["detail"]
    assert_problem(client.delete(f"/v1/jobs/{job['id']}", headers=other_auth), 404)
    client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth).status_code == 204
    assert_problem(client.delete(f"/v1/jobs/{job['id']}", headers=auth), 404)


def test_a_checkpoint_goes_unless_an_active_job_needs_it(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str],
) -> None:

    done = trained_job(app, client, auth)
    items = client.get(f"/v1/jobs/{done['id']}/checkpoints", headers=auth).get_json()["items"]
    first, last = items[0]["id"], items[-1]["id"]
    assert_problem(client.delete(f"/v1/checkpoints/{first}", headers=other_auth), 404)
    before = stored(app, auth)
    assert client.delete(f"/v1/checkpoints/{first}", headers=auth).status_code == 204
    assert stored(app, auth) == before - items[0]["size_bytes"]
    assert_problem(client.get(f"/v1/checkpoints/{first}", headers=auth), 404)

    # a queued job warm-starts from `last`: neither it nor its job may go
    warm = client.post("/v1/jobs", json={**SPEC, "init_checkpoint": last}, headers=auth)
    assert warm.status_code == 202, warm.data
    body = assert_problem(client.delete(f"/v1/checkpoints/{last}", headers=auth), 409)
    assert f"job {warm.get_json()['id']} starts from checkpoint {last}" in body["detail"]
    assert_problem(client.delete(f"/v1/jobs/{done['id']}", headers=auth), 409)

    # a running job's own checkpoints are its resume points
    running = client.post("/v1/jobs", json=SPEC, headers=auth).get_json()["id"]
    from store import claims

    with app.extensions["weightsmith"].session_factory.begin() as s:
        assert claims.claim_job(s, running, "w2") is not None
        from store import checkpoints as store_checkpoints

        own = store_checkpoints.save_checkpoint(s, running, 1, "periodic", b"resume-point").id
    body = assert_problem(client.delete(f"/v1/checkpoints/{own}", headers=auth), 409)
    assert "which is queued or running and may resume from it" in body["detail"]

    client.post(f"/v1/jobs/{warm.get_json()['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/checkpoints/{last}", headers=auth).status_code == 204


def test_an_import_counts_and_can_be_deleted(
    client: FlaskClient, auth: dict[str, str], app: OpenAPI,
) -> None:
    import json

    import numpy as np

    from tests.service.helpers import npz_bytes

    data = npz_bytes(**{"0.weight": np.ones((4, 2), np.float32),
                        "0.bias": np.zeros(2, np.float32),
                        "__spec__": np.array(json.dumps({"layers": [
                            {"type": "dense", "units": 2}]}))})
    created = client.post("/v1/checkpoints", data=data,
                          headers={**auth, "Content-Type": "application/x-npz"})
    assert created.status_code == 201, created.data
    assert stored(app, auth) == len(data)
    ident = created.get_json()["id"]
    assert client.delete(f"/v1/checkpoints/{ident}", headers=auth).status_code == 204
    assert stored(app, auth) == 0
    assert ident not in app.extensions["weightsmith"].model_cache


def test_what_a_registered_model_version_holds_is_not_deleted(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str],
) -> None:
    from store import registry
    from store.models import Checkpoint

    done = trained_job(app, client, auth)
    items = client.get(f"/v1/jobs/{done['id']}/checkpoints", headers=auth).get_json()["items"]
    with app.extensions["weightsmith"].session_factory.begin() as s:
        checkpoint = s.get(Checkpoint, items[-1]["id"])
        assert checkpoint is not None
        model = registry.create_model(s, checkpoint.tenant_id, "m")
        registry.add_version(s, model, checkpoint, dataset_id=None, dataset_sha256=None)
    body = assert_problem(client.delete(f"/v1/checkpoints/{items[-1]['id']}", headers=auth), 409)
    assert "is a registered model version's weights" in body["detail"]
    body = assert_problem(client.delete(f"/v1/jobs/{done['id']}", headers=auth), 409)
    assert "made the registered model version(s) m v1" in body["detail"]
    assert client.delete(f"/v1/checkpoints/{items[0]['id']}", headers=auth).status_code == 204


def test_a_fork_keeps_the_checkpoint_it_starts_from(
    app: OpenAPI, client: FlaskClient, auth: dict[str, str],
) -> None:
    done = trained_job(app, client, auth)
    fork = client.post(f"/v1/jobs/{done['id']}/fork", json={"optimizer_state": "reset"},
                       headers=auth)
    assert fork.status_code == 202, fork.data
    start = fork.get_json()["parent"]["checkpoint_id"]
    body = assert_problem(client.delete(f"/v1/checkpoints/{start}", headers=auth), 409)
    assert f"job {fork.get_json()['id']} starts from checkpoint {start}" in body["detail"]
    assert_problem(client.delete(f"/v1/jobs/{done['id']}", headers=auth), 409)
    client.post(f"/v1/jobs/{fork.get_json()['id']}/cancel", headers=auth)
    assert client.delete(f"/v1/jobs/{done['id']}", headers=auth).status_code == 204
