"""Fixtures of the service tests: a migrated SQLite database and a filesystem broker in
tmp_path, the app and its test client, and API keys of two tenants (for isolation tests).

No worker runs here: a submitted job becomes a message file in the broker folder, and tests
that need a job's later life (metrics, checkpoints, events) write it through store/ as the
worker would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from werkzeug.serving import make_server

from config.settings import Limits, Settings
from service.app import create_app

MiB = 1024 * 1024
TEST_LIMITS = Limits(
    max_upload_bytes=2 * MiB,
    max_dataset_rows=5_000,
    max_dataset_features=300,
    max_model_params=200_000,
    max_epochs=500,
    max_runtime_s=3600,
    max_concurrent_jobs=4,
    max_predict_rows=100,
    max_stored_bytes=8 * MiB,
    rate_limit="10000 per second",
    # Tests send many bad keys on purpose; tests/service/test_auth.py sets its own budget.
    auth_failure_limit="10000 per second",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: long Schemathesis run, `make fuzz` only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fuzz" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="fuzz run: `make fuzz` (pytest -m fuzz)")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, limits=TEST_LIMITS)


@pytest.fixture
def migrated(settings: Settings) -> None:
    from store.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)


@pytest.fixture
def app(settings: Settings, migrated: None) -> OpenAPI:
    application = create_app(settings, testing=True)
    application.config.update(SSE_MAX_SECONDS=5.0, SSE_POLL_SECONDS=0.02)
    return application


@pytest.fixture
def client(app: OpenAPI) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session_factory(app: OpenAPI) -> Any:
    return app.extensions["weightsmith"].session_factory


def make_key(session_factory: Any, tenant: str) -> str:
    from store import keys, tenants

    with session_factory.begin() as session:
        key: str = keys.create_key(session, tenants.get_or_create(session, tenant).id)[0]
    return key


@pytest.fixture
def api_key(session_factory: Any) -> str:
    return make_key(session_factory, "acme")


@pytest.fixture
def other_key(session_factory: Any) -> str:
    return make_key(session_factory, "globex")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def other_auth(other_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {other_key}"}


@pytest.fixture
def broker_messages(settings: Settings) -> Iterator[Any]:
    """A function listing the task messages the filesystem broker holds (newest last)."""
    import base64
    import json

    def messages() -> list[dict[str, Any]]:
        out = []
        folder = settings.broker_dir / "queue"
        for path in sorted(folder.glob("*")) if folder.exists() else []:
            envelope = json.loads(path.read_text())
            body = json.loads(base64.b64decode(envelope["body"]))
            out.append({"task": envelope["headers"]["task"], "args": body[0]})
        return out

    yield messages


def seed_resources(app: OpenAPI, settings: Settings) -> dict[str, str]:
    """A tenant with a key, an uploaded dataset and a job trained on it (by the worker's runner
    in process), so fuzzing reaches past "404 not found" into real resources."""
    from tests.service.helpers import mlp_spec, upload_csv
    from worker.runner import JobRunner

    session_factory = app.extensions["weightsmith"].session_factory
    key = make_key(session_factory, "fuzzer")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    dataset = upload_csv(client, auth, n=60, features=4, classes=3)["id"]
    job = client.post("/v1/jobs", json=mlp_spec(dataset, epochs=2), headers=auth).get_json()
    assert JobRunner(session_factory, settings, job["id"], "seed-worker").run() == "succeeded"
    checkpoints = client.get(f"/v1/jobs/{job['id']}/checkpoints", headers=auth).get_json()
    return {"api_key": key, "dataset_id": dataset, "job_id": job["id"],
            "checkpoint_id": checkpoints["items"][-1]["id"]}


@pytest.fixture
def seeded(app: OpenAPI, settings: Settings) -> dict[str, str]:
    return seed_resources(app, settings)


@pytest.fixture
def live_url(app: Any) -> Iterator[str]:
    """The app served over real HTTP on a free port (werkzeug, threaded): for the client
    and CLI, which speak HTTP rather than Flask's test client."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
