"""`/v1/jobs`: dry run, submit (idempotent, after-commit dispatch), list, get, cancel, resume,
quotas, tenant isolation, and a job's whole life with the worker's runner in process."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from config.settings import Settings
from service.app import create_app
from tests.service.helpers import assert_problem, mlp_spec, upload_csv

JOB_KEYS = {"id", "name", "status", "spec", "progress", "latest", "best", "stop_reason",
            "failure_reason", "attempts", "created_at", "started_at", "finished_at"}


@pytest.fixture
def dataset(client: FlaskClient, auth: dict[str, str]) -> str:
    return str(upload_csv(client, auth, n=60, features=4, classes=3)["id"])


def submit(client: FlaskClient, auth: dict[str, str], spec: dict[str, Any],
           key: str | None = None) -> Any:
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    return client.post("/v1/jobs", json=spec, headers=headers)


def count_jobs(client: FlaskClient, auth: dict[str, str]) -> int:
    return len(client.get("/v1/jobs?limit=500", headers=auth).get_json()["items"])


def test_validate_reports_shapes_params_flops(client: FlaskClient, auth: dict[str, str],
                                              dataset: str) -> None:
    response = client.post("/v1/jobs:validate", json=mlp_spec(dataset), headers=auth)
    assert response.status_code == 200, response.data
    report = response.get_json()
    assert report["input_shape"] == [4] and report["n_samples"] == 60
    assert [layer["params"] for layer in report["layers"]] == [4 * 8 + 8, 8 * 3 + 3]
    assert report["total_params"] == 67
    assert [layer["output_shape"] for layer in report["layers"]] == [[8], [3]]
    assert all(layer["memory_bytes"] > 0 for layer in report["layers"])
    assert report["flops_per_epoch"] > 0
    assert report["memory_bytes"] > sum(layer["memory_bytes"] for layer in report["layers"])


@pytest.mark.parametrize(("change", "field"), [
    (lambda s: s["model"]["layers"][0].update(units=-3), "model.layers[0].units"),
    (lambda s: s.update(surprise=1), "surprise"),
    (lambda s: s.update(dataset="ds_doesnotexist"), "dataset"),
    (lambda s: s.update(dataset="builtin:nope"), "dataset"),
    (lambda s: s["training"].update(epochs=501), "training.epochs"),
    (lambda s: s["model"]["layers"][0].update(units=60_000), "model.layers"),
    (lambda s: s.update(name="x\x1b[31m"), "name"),
])
def test_validate_and_submit_refuse_bad_specs(client: FlaskClient, auth: dict[str, str],
                                              dataset: str, change: Any, field: str) -> None:
    spec = mlp_spec(dataset)
    change(spec)
    for url in ("/v1/jobs:validate", "/v1/jobs"):
        body = assert_problem(client.post(url, json=spec, headers=auth), 422)
        assert any(e["field"].startswith(field) for e in body["errors"]), body
    assert count_jobs(client, auth) == 0


def test_labels_out_of_range_for_the_output_layer(client: FlaskClient, auth: dict[str, str],
                                                  dataset: str) -> None:
    # The dry run runs every check submit runs: a dry run that passes, submits.
    for url in ("/v1/jobs:validate", "/v1/jobs"):
        body = assert_problem(client.post(url, json=mlp_spec(dataset, outputs=2),
                                          headers=auth), 422)
        assert body["errors"] == [{"field": "dataset", "message": (
            "y row 3: label 2 is outside 0..1; the output layer model.layers[1] has 2 units, "
            "one per class")}]
    assert count_jobs(client, auth) == 0


def test_a_spec_names_an_uploaded_dataset_by_name_the_newest_with_it(
    client: FlaskClient, auth: dict[str, str], broker_messages: Any
) -> None:
    older = upload_csv(client, auth, n=60, name="train")["id"]
    newer = upload_csv(client, auth, n=30, name="train", seed=1)["id"]
    report = client.post("/v1/jobs:validate", json=mlp_spec("train"), headers=auth)
    assert report.status_code == 200, report.data
    assert (report.get_json()["dataset_id"], report.get_json()["n_samples"]) == (newer, 30)
    job = submit(client, auth, mlp_spec("train")).get_json()
    assert (job["dataset_id"], job["spec"]["dataset"]) == (newer, "train")
    # A newer upload under the name does not move a job already submitted.
    upload_csv(client, auth, n=45, name="train", seed=2)
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["dataset_id"] == newer
    # An id still names its own dataset; ids win over names; a builtin has no dataset_id.
    by_id = client.post("/v1/jobs:validate", json=mlp_spec(older), headers=auth).get_json()
    assert (by_id["dataset_id"], by_id["n_samples"]) == (older, 60)
    builtin = client.post("/v1/jobs:validate", headers=auth,
                          json=mlp_spec("builtin:digits", outputs=10)).get_json()
    assert builtin["dataset_id"] is None
    body = assert_problem(client.post("/v1/jobs", json=mlp_spec("nameless"), headers=auth), 422)
    assert body["errors"] == [{"field": "dataset",
                               "message": "no dataset with id or name 'nameless'"}]


def test_submit_is_202_with_location_and_a_broker_message(
    client: FlaskClient, auth: dict[str, str], dataset: str, broker_messages: Any
) -> None:
    response = submit(client, auth, mlp_spec(dataset))
    assert response.status_code == 202, response.data
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert set(job) >= JOB_KEYS
    assert job["status"] == "queued" and job["progress"] == {"epoch": 0, "epochs": 2}
    assert job["attempts"] == 0 and job["dataset_id"] == dataset
    assert job["spec"]["training"]["epochs"] == 2 and "optimizer" in job["spec"]
    assert broker_messages() == [{"task": "weightsmith.train_job", "args": [job["id"]]}]
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json() == job


def test_idempotency_key(client: FlaskClient, auth: dict[str, str], dataset: str,
                         broker_messages: Any) -> None:
    first = submit(client, auth, mlp_spec(dataset), key="order-1")
    again = submit(client, auth, mlp_spec(dataset), key="order-1")
    assert first.status_code == 202 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = submit(client, auth, mlp_spec(dataset, epochs=3), key="order-1")
    assert assert_problem(other, 409)["type"].endswith("idempotency-conflict")
    assert count_jobs(client, auth) == 1 and len(broker_messages()) == 1


def test_a_replay_is_answered_even_when_the_body_no_longer_validates(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    first = submit(client, auth, mlp_spec(dataset), key="order-1")
    ident = first.get_json()["id"]
    client.post(f"/v1/jobs/{ident}/cancel", headers=auth)
    assert client.delete(f"/v1/datasets/{dataset}", headers=auth).status_code == 204
    again = submit(client, auth, mlp_spec(dataset), key="order-1")
    assert again.status_code == 200 and again.get_json()["id"] == ident
    fresh = submit(client, auth, mlp_spec(dataset), key="order-2")  # no earlier job: the 422
    assert assert_problem(fresh, 422)["errors"][0]["field"] == "dataset"
    assert count_jobs(client, auth) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "caf\u00e9"])
def test_malformed_idempotency_key_is_400(client: FlaskClient, auth: dict[str, str],
                                          dataset: str, key: str) -> None:
    headers = {**auth, "Idempotency-Key": key.encode().decode("latin-1")}
    response = client.post("/v1/jobs", json=mlp_spec(dataset), headers=headers)
    assert_problem(response, 400)
    assert count_jobs(client, auth) == 0


def test_list_filters_by_status_and_pages(client: FlaskClient, auth: dict[str, str],
                                          dataset: str) -> None:
    ids = [submit(client, auth, mlp_spec(dataset, epochs=i + 1)).get_json()["id"]
           for i in range(3)]
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=auth)
    page = client.get("/v1/jobs?limit=2", headers=auth).get_json()
    assert [j["id"] for j in page["items"]] == [ids[2], ids[1]]
    rest = client.get(f"/v1/jobs?limit=2&cursor={page['next_cursor']}", headers=auth).get_json()
    assert [j["id"] for j in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    queued = client.get("/v1/jobs?status=queued", headers=auth).get_json()["items"]
    assert [j["id"] for j in queued] == [ids[2], ids[1]]
    cancelled = client.get("/v1/jobs?status=cancelled", headers=auth).get_json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]


def test_cancel_and_resume(client: FlaskClient, auth: dict[str, str], dataset: str,
                           broker_messages: Any) -> None:
    ident = submit(client, auth, mlp_spec(dataset)).get_json()["id"]
    assert_problem(client.post(f"/v1/jobs/{ident}/resume", headers=auth), 409)
    cancelled = client.post(f"/v1/jobs/{ident}/cancel", headers=auth)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["stop_reason"] == "cancelled"
    assert_problem(client.post(f"/v1/jobs/{ident}/cancel", headers=auth), 409)
    bad = client.post(f"/v1/jobs/{ident}/resume", json={"epochs": 0}, headers=auth)
    assert assert_problem(bad, 422)["errors"][0]["field"] == "epochs"
    assert_problem(client.post(f"/v1/jobs/{ident}/resume", json={"epochs": 1, "x": 2},
                               headers=auth), 422)
    resumed = client.post(f"/v1/jobs/{ident}/resume", json={"epochs": 3}, headers=auth)
    assert resumed.status_code == 202, resumed.data
    job = resumed.get_json()
    assert job["status"] == "queued" and job["progress"] == {"epoch": 0, "epochs": 5}
    assert job["spec"]["training"]["epochs"] == 5 and job["stop_reason"] is None
    assert [m["args"] for m in broker_messages()] == [[ident], [ident]]


def test_concurrent_job_quota_is_429(client: FlaskClient, auth: dict[str, str],
                                     dataset: str, settings: Settings) -> None:
    for i in range(settings.limits.max_concurrent_jobs):
        assert submit(client, auth, mlp_spec(dataset, epochs=i + 1)).status_code == 202
    response = submit(client, auth, mlp_spec(dataset, epochs=99))
    body = assert_problem(response, 429)
    assert body["type"].endswith("quota-exceeded")
    assert 25 <= int(response.headers["Retry-After"]) <= 30
    assert count_jobs(client, auth) == settings.limits.max_concurrent_jobs


def test_broker_down_still_accepts_the_job(settings: Settings, migrated: None,
                                           api_key: str) -> None:
    app = create_app(settings.with_overrides(broker_url="redis://127.0.0.1:1/0"), testing=True)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {api_key}"}
    response = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2), headers=auth)
    assert response.status_code == 202, response.data
    assert client.get(response.headers["Location"], headers=auth).get_json()["status"] == "queued"
    dispatcher = app.extensions["weightsmith"].dispatcher
    assert (dispatcher.sent, dispatcher.failed) == (0, 1)
    again = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2, epochs=3),
                        headers=auth)
    assert again.status_code == 202  # within the back-off: not even tried, still accepted
    assert (dispatcher.sent, dispatcher.failed) == (0, 2)


def test_another_tenants_job_is_404_everywhere(client: FlaskClient, auth: dict[str, str],
                                               other_auth: dict[str, str], dataset: str) -> None:
    ident = submit(client, auth, mlp_spec(dataset)).get_json()["id"]
    for method, url in (("get", ""), ("post", "/cancel"), ("post", "/resume"),
                        ("get", "/metrics"), ("get", "/checkpoints"), ("get", "/events")):
        response = getattr(client, method)(f"/v1/jobs/{ident}{url}", headers=other_auth)
        assert_problem(response, 404)
    response = client.post(f"/v1/jobs/{ident}/predict", json={"inputs": [[0, 0, 0, 0]]},
                           headers=other_auth)
    assert_problem(response, 404)
    assert client.get("/v1/jobs", headers=other_auth).get_json()["items"] == []
    # Nor can another tenant train on this tenant's dataset.
    body = assert_problem(submit(client, other_auth, mlp_spec(dataset)), 422)
    assert body["errors"][0]["field"] == "dataset"
    assert client.get(f"/v1/jobs/{ident}", headers=auth).get_json()["status"] == "queued"


def test_init_checkpoint_of_another_tenant_is_refused(
    client: FlaskClient, auth: dict[str, str], other_auth: dict[str, str], dataset: str
) -> None:
    from tests.service.test_checkpoints import import_weights

    theirs = import_weights(client, other_auth).get_json()["id"]
    spec = {**mlp_spec(dataset), "init_checkpoint": theirs}
    body = assert_problem(submit(client, auth, spec), 422)
    assert body["errors"][0]["field"] == "init_checkpoint"
    mine = import_weights(client, auth).get_json()["id"]
    assert submit(client, auth, {**mlp_spec(dataset, hidden=5), "init_checkpoint": mine}
                  ).status_code == 202


def test_a_dataset_in_use_by_an_active_job_cannot_be_deleted(
    client: FlaskClient, auth: dict[str, str], dataset: str
) -> None:
    ident = submit(client, auth, mlp_spec(dataset)).get_json()["id"]
    assert_problem(client.delete(f"/v1/datasets/{dataset}", headers=auth), 409)
    client.post(f"/v1/jobs/{ident}/cancel", headers=auth)
    assert client.delete(f"/v1/datasets/{dataset}", headers=auth).status_code == 204
    assert client.get(f"/v1/jobs/{ident}", headers=auth).get_json()["dataset_id"] is None


@pytest.mark.parametrize("url", [
    "/metrics?after_epoch=99999999999999999999",
    "/events?last_event_id=99999999999999999999",
    "/metrics?after_epoch=-1",
])
def test_out_of_range_integers_are_422_not_overflows(client: FlaskClient, auth: dict[str, str],
                                                     url: str) -> None:
    job = submit(client, auth, mlp_spec("builtin:xor", outputs=2)).get_json()
    assert_problem(client.get(f"/v1/jobs/{job['id']}{url}", headers=auth), 422)


@pytest.mark.parametrize("value", ["99999999999999999999", "\u00b2", "-1", "1.5"])
def test_bad_last_event_id_header_is_422(client: FlaskClient, auth: dict[str, str],
                                         value: str) -> None:
    job = submit(client, auth, mlp_spec("builtin:xor", outputs=2)).get_json()
    response = client.get(f"/v1/jobs/{job['id']}/events",
                          headers={**auth, "Last-Event-ID": value.encode().decode("latin-1")})
    assert assert_problem(response, 422)["errors"][0]["field"] == "Last-Event-ID"
