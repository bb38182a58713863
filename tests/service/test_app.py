"""App-wide behaviour: OpenAPI, docs, probes, Prometheus, auth, and every generic error status."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from config.settings import Settings
from service.app import create_app
from tests.service.helpers import assert_problem


def test_openapi_31_lists_every_operation(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path) for path, item in doc["paths"].items() for method in item
    }
    expected = {
        ("POST", "/v1/datasets"), ("GET", "/v1/datasets"), ("GET", "/v1/datasets/{dataset_id}"),
        ("DELETE", "/v1/datasets/{dataset_id}"), ("POST", "/v1/jobs:validate"),
        ("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{job_id}"),
        ("POST", "/v1/jobs/{job_id}/cancel"), ("POST", "/v1/jobs/{job_id}/resume"),
        ("GET", "/v1/jobs/{job_id}/metrics"), ("GET", "/v1/jobs/{job_id}/events"),
        ("GET", "/v1/jobs/{job_id}/checkpoints"), ("GET", "/v1/checkpoints/{checkpoint_id}"),
        ("GET", "/v1/checkpoints/{checkpoint_id}/weights.npz"),
        ("GET", "/v1/checkpoints/{checkpoint_id}/model.onnx"),
        ("GET", "/v1/models/{name}/versions/{version}/model.onnx"),
        ("GET", "/v1/checkpoints/{checkpoint_id}/layers/{name}"), ("POST", "/v1/checkpoints"),
        ("POST", "/v1/jobs/{job_id}/predict"), ("POST", "/v1/checkpoints/{checkpoint_id}/predict"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("GET", "/v1/jobs:compare"), ("GET", "/v1/jobs/{job_id}/metrics.csv"),
        ("GET", "/v1/jobs/{job_id}/diagnostics"),
        ("GET", "/v1/jobs/{job_id}/manifest"), ("POST", "/v1/jobs/{job_id}/reproduce"),
        ("POST", "/v1/jobs:lr_range_test"), ("GET", "/v1/jobs/{job_id}/lr_range_test"),
        ("POST", "/v1/jobs/{job_id}/fork"),
        ("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("GET", "/v1/webhooks/{webhook_id}"),
        ("DELETE", "/v1/webhooks/{webhook_id}"), ("POST", "/v1/webhooks/{webhook_id}/ping"),
        ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
        ("POST", "/v1/models"), ("GET", "/v1/models"), ("GET", "/v1/models/{name}"),
        ("POST", "/v1/models/{name}/versions"), ("GET", "/v1/models/{name}/versions"),
        ("GET", "/v1/models/{name}/versions/{version}"),
        ("PUT", "/v1/models/{name}/aliases/{alias}"),
        ("DELETE", "/v1/models/{name}/aliases/{alias}"),
        ("GET", "/v1/models/{name}/aliases/{alias}/history"),
        ("POST", "/v1/models/{name}/predict"),
        ("GET", "/v1/keys"), ("DELETE", "/v1/keys/{key_id}"),
        ("POST", "/v1/batch-predictions"), ("GET", "/v1/batch-predictions/{batch_id}"),
        ("GET", "/v1/batch-predictions/{batch_id}/result"),
        ("POST", "/v1/batch-predictions/{batch_id}/cancel"),
        ("GET", "/v1/batch-predictions/{batch_id}/events"),
        ("DELETE", "/v1/jobs/{job_id}"), ("DELETE", "/v1/checkpoints/{checkpoint_id}"),
        ("POST", "/v1/sweeps"), ("GET", "/v1/sweeps"), ("GET", "/v1/sweeps/{sweep_id}"),
        ("GET", "/v1/sweeps/{sweep_id}/trials"), ("POST", "/v1/sweeps/{sweep_id}/cancel"),
        ("GET", "/v1/sweeps/{sweep_id}/events"),
        ("POST", "/v1/uploads"), ("GET", "/v1/uploads/{upload_id}"),
        ("PUT", "/v1/uploads/{upload_id}"), ("DELETE", "/v1/uploads/{upload_id}"),
    }
    assert operations == expected
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])


def test_browsable_docs(client: FlaskClient) -> None:
    assert client.get("/docs").status_code == 308
    page = client.get("/docs/swagger")
    assert page.status_code == 200 and b"swagger" in page.data.lower()
    assert client.get("/docs/openapi.json").get_json()["openapi"].startswith("3.1")


def test_health_and_ready(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.data
    assert ready.get_json() == {
        "status": "ready", "checks": {"database": "ok", "broker": "ok", "schema": "ok"}
    }


def test_ready_reports_a_broker_that_is_down(settings: Settings, migrated: None) -> None:
    down = settings.with_overrides(broker_url="redis://127.0.0.1:1/0")
    client = create_app(down, testing=True).test_client()
    body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["database"] == "ok" and body["checks"]["schema"] == "ok"
    assert body["checks"]["broker"].startswith("failed")


def test_ready_reports_a_schema_behind_head(settings: Settings) -> None:
    client = create_app(settings, testing=True).test_client()  # nothing migrated
    body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"]["schema"].startswith("failed")


def test_prometheus_counts_requests_and_jobs(client: FlaskClient, auth: dict[str, str]) -> None:
    for _ in range(3):
        client.get("/v1/jobs", headers=auth)
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'weightsmith_http_requests_total{endpoint="/v1/jobs",method="GET",status="200"} 3.0'
        in text
    )
    assert 'weightsmith_http_request_duration_seconds_count{endpoint="/v1/jobs",method="GET"} 3.0' \
        in text
    assert 'weightsmith_jobs{status="queued"} 0.0' in text


def test_401_without_or_with_a_wrong_key(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer " + "x" * 300}):
        response = client.get("/v1/jobs", headers=headers)
        body = assert_problem(response, 401)
        assert body["type"].endswith("unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_404_and_405_are_problems(client: FlaskClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.get("/v1/nowhere", headers=auth), 404)
    response = client.put("/v1/jobs", headers=auth)
    assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_500_is_a_problem_without_internals(settings: Settings, migrated: None) -> None:
    app = create_app(settings, testing=False)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    body = assert_problem(app.test_client().get("/boom"), 500)
    assert "secret" not in json.dumps(body)


def test_malformed_and_deep_json_are_400(client: FlaskClient, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    body = assert_problem(client.post("/v1/jobs", data=b"{not json", headers=headers), 400)
    assert "not valid JSON" in body["detail"]
    assert_problem(client.post("/v1/jobs", data=b"\xff\xfe{}", headers=headers), 400)
    deep = "[" * 100 + "]" * 100
    body = assert_problem(client.post("/v1/jobs:validate", data=deep, headers=headers), 400)
    assert "deeper than 64" in body["detail"]
    deeper = "[" * 100_000 + "]" * 100_000
    assert_problem(client.post("/v1/jobs:validate", data=deeper, headers=headers), 400)


def test_415_for_a_json_endpoint(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/jobs", data="name=x", headers={
        **auth, "Content-Type": "application/x-www-form-urlencoded"})
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]


def test_413_for_a_body_over_the_upload_limit(client: FlaskClient, auth: dict[str, str],
                                              settings: Settings) -> None:
    payload = b"[" + b"0," * settings.limits.max_upload_bytes + b"0]"
    response = client.post("/v1/jobs:validate", data=payload,
                           headers={**auth, "Content-Type": "application/json"})
    assert_problem(response, 413)


def test_422_from_request_models_is_a_problem(client: FlaskClient, auth: dict[str, str]) -> None:
    body = assert_problem(client.get("/v1/jobs?limit=0", headers=auth), 422)
    assert body["errors"][0]["field"] == "limit"
    body = assert_problem(client.get("/v1/jobs?status=bogus", headers=auth), 422)
    assert body["errors"][0]["field"] == "status"


def test_rate_limit_429_with_retry_after(settings: Settings, migrated: None,
                                         api_key: str) -> None:
    limited = settings.with_overrides(limits=settings.limits.__class__(
        **{**settings.limits.__dict__, "rate_limit": "3 per minute"}))
    client = create_app(limited, testing=True).test_client()
    headers = {"Authorization": f"Bearer {api_key}"}
    statuses = [client.get("/v1/jobs", headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get("/v1/jobs", headers=headers)
    body = assert_problem(response, 429)
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "rate limit" in body["detail"]
    # Probes are not rate limited.
    assert client.get("/healthz").status_code == 200
