"""The production backends: PostgreSQL for the store, Redis for the broker and the rate limit."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from config.settings import Limits, Settings
from service.app import create_app
from tests.service.conftest import TEST_LIMITS, make_key
from tests.service.helpers import assert_problem, mlp_spec

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def prod_app(tmp_path: Any, postgres_url: str, redis_url: str) -> Any:
    from store.migrate import upgrade_to_head

    upgrade_to_head(postgres_url)
    limits = Limits(**{**TEST_LIMITS.__dict__, "rate_limit": "5 per minute"})
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, broker_url=redis_url,
                        limits=limits)
    app = create_app(settings, testing=True)
    yield app
    app.extensions["weightsmith"].engine.dispose()


def test_submit_reaches_the_redis_queue_and_ready_is_green(prod_app: Any,
                                                            redis_url: str) -> None:
    import redis

    key = make_key(prod_app.extensions["weightsmith"].session_factory, "acme")
    client = prod_app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/readyz").get_json()["status"] == "ready"
    response = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2), headers=auth)
    assert response.status_code == 202, response.data
    assert redis.Redis.from_url(redis_url).llen("weightsmith") == 1


def test_rate_limit_is_shared_through_redis(prod_app: Any, redis_url: str) -> None:
    key = make_key(prod_app.extensions["weightsmith"].session_factory, "acme")
    auth = {"Authorization": f"Bearer {key}"}
    # Two app instances (two gunicorn workers, say) share one budget of 5 per minute.
    twin = create_app(prod_app.extensions["weightsmith"].settings, testing=True)
    clients = [prod_app.test_client(), twin.test_client()]
    statuses = [clients[i % 2].get("/v1/jobs", headers=auth).status_code for i in range(6)]
    assert statuses == [200] * 5 + [429]
    twin.extensions["weightsmith"].engine.dispose()


def test_concurrent_requests_with_one_idempotency_key_make_one_job(prod_app: Any) -> None:
    key = make_key(prod_app.extensions["weightsmith"].session_factory, "acme")
    prod_app.extensions["weightsmith_limiter"].enabled = False
    auth = {"Authorization": f"Bearer {key}", "Idempotency-Key": "same-key"}
    spec = mlp_spec("builtin:xor", outputs=2)
    results: list[Any] = []

    def post() -> None:
        response = prod_app.test_client().post("/v1/jobs", json=spec, headers=auth)
        results.append((response.status_code, response.get_json()["id"]))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200] * 5 + [202], results
    assert len({job_id for _, job_id in results}) == 1
    client = prod_app.test_client()
    other = client.post("/v1/jobs", json=mlp_spec("builtin:xor", outputs=2, epochs=7),
                        headers=auth)
    assert_problem(other, 409)


def test_a_submission_is_one_statement_and_a_full_quota_stores_nothing(
    prod_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    services = prod_app.extensions["weightsmith"]
    key = make_key(services.session_factory, "acme")
    prod_app.extensions["weightsmith_limiter"].enabled = False
    client = prod_app.test_client()
    auth = {"Authorization": f"Bearer {key}"}

    def post(epochs: int) -> Any:
        spec = mlp_spec("builtin:xor", outputs=2, epochs=epochs)
        return client.post("/v1/jobs", json=spec, headers=auth)

    assert post(1).status_code == 202  # warms the key cache and the pool
    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def record(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    # At the driver: the submission runs there, past SQLAlchemy's events (store.submissions).
    with monkeypatch.context() as patch:
        patch.setattr(psycopg.Cursor, "execute", record)
        made = post(2)
    assert made.status_code == 202, made.data
    assert len(statements) == 1 and statements[0].lstrip().startswith("WITH"), statements
    with services.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT seq, data->>'status' FROM job_events WHERE "
                                    "job_id = :id"), {"id": made.get_json()["id"]}).all() == [
            (1, "queued")]
    for epochs in range(3, 3 + services.settings.limits.max_concurrent_jobs - 2):
        assert post(epochs).status_code == 202
    assert_problem(post(99), 429)
    with services.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
    assert count == services.settings.limits.max_concurrent_jobs


def _drop_database_connections(database_url: str) -> int:
    """Terminate every other session of this database, as a restart or failover would."""
    admin = sa.create_engine(database_url)
    with admin.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar_one()
    admin.dispose()
    return int(killed)


def test_a_dropped_database_connection_is_one_503_then_the_pool_recovers(
    prod_app: Any, postgres_url: str
) -> None:
    from service.client import WeightsmithClient

    services = prod_app.extensions["weightsmith"]
    key = make_key(services.session_factory, "acme")
    prod_app.extensions["weightsmith_limiter"].enabled = False
    client = prod_app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/jobs", headers=auth).status_code == 200
    assert _drop_database_connections(postgres_url) >= 1
    dropped = client.get("/v1/jobs", headers=auth)
    body = assert_problem(dropped, 503)
    assert body["type"].endswith("database-unavailable") and dropped.headers["Retry-After"] == "1"
    assert client.get("/v1/jobs", headers=auth).status_code == 200  # a fresh connection
    # The client waits out the Retry-After of a keyed POST and gets its job.
    _drop_database_connections(postgres_url)
    statuses: list[int] = []
    hooks = {"response": [lambda response: statuses.append(response.status_code)]}
    with WeightsmithClient("http://testserver", key,
                           transport=httpx.WSGITransport(app=prod_app)) as ws:
        ws._http.event_hooks = hooks
        job = ws.submit(mlp_spec("builtin:xor", outputs=2))
    assert job["status"] == "queued" and statuses == [503, 202]


def test_a_255_character_idempotency_key_fits_the_column(prod_app: Any) -> None:
    key = make_key(prod_app.extensions["weightsmith"].session_factory, "acme")
    client = prod_app.test_client()
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "k" * 255}
    spec = mlp_spec("builtin:xor", outputs=2)
    first = client.post("/v1/jobs", json=spec, headers=headers)
    assert first.status_code == 202, first.data
    again = client.post("/v1/jobs", json=spec, headers=headers)
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]


def test_schemathesis_on_postgresql(prod_app: Any, settings: Settings) -> None:
    """The fuzz cases again on PostgreSQL: it enforces column types SQLite lets pass."""
    from tests.service.conftest import seed_resources
    from tests.service.test_schemathesis import documented_operations, run_schemathesis

    prod_app.extensions["weightsmith_limiter"].enabled = False
    seeded = seed_resources(prod_app, settings.with_overrides(
        database_url=prod_app.extensions["weightsmith"].settings.database_url))
    counts = run_schemathesis(prod_app, seeded, examples=20)
    assert len(counts) == documented_operations(prod_app)
