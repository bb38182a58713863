"""Shared fixtures: the real PostgreSQL and Redis servers, when they are there.

`make test` on a laptop without them runs the embedded half and lists what it skipped (-ra).
CI sets WEIGHTSMITH_REQUIRE_SERVICES=1, which turns a missing server into a failure instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def _need(url: str, what: str) -> None:
    if _reachable(url):
        return
    message = f"{what} is not reachable at {url}"
    if os.environ.get("WEIGHTSMITH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and WEIGHTSMITH_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message}: skipping the production-backend tests")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("WEIGHTSMITH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    _need(url, "PostgreSQL")
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"ws_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    url = os.environ.get("WEIGHTSMITH_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    _need(url, "Redis")
    return url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database number of its own for one test, flushed before and after."""
    import redis

    base = redis_server_url.rsplit("/", 1)[0]
    db = 1 + (uuid.uuid4().int % 15)
    url = f"{base}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
