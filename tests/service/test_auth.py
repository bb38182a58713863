"""Authentication and its limits (issue 19): a strict header, a rate limit per resolved key,
failed authentications limited per client address, and keys listed and revoked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config.settings import Limits, Settings
from service.app import create_app
from tests.hostile_payloads import MALFORMED_AUTHORIZATION
from tests.service.conftest import TEST_LIMITS, make_key
from tests.service.helpers import assert_problem

AppFactory = Callable[..., OpenAPI]


@pytest.fixture
def app_with(tmp_path: Path, migrated: None, settings: Settings) -> AppFactory:
    """An app on the test database with some of its limits changed."""

    def make(**limits: Any) -> OpenAPI:
        changed = Limits(**{**TEST_LIMITS.__dict__, **limits})
        return create_app(settings.with_overrides(limits=changed), testing=True)

    return make


@pytest.mark.parametrize("header", [case[1] for case in MALFORMED_AUTHORIZATION],
                         ids=[case[0] for case in MALFORMED_AUTHORIZATION])
def test_a_malformed_authorization_header_is_401(client: FlaskClient, api_key: str,
                                                 header: str) -> None:
    response = client.get("/v1/jobs", headers={"Authorization": header.format(key=api_key)})
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization" in body["detail"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_scheme_is_case_insensitive(client: FlaskClient, api_key: str, scheme: str) -> None:
    response = client.get("/v1/jobs", headers={"Authorization": f"{scheme} {api_key}"})
    assert response.status_code == 200, response.data


def test_the_rate_limit_counts_the_key_however_its_header_is_spelled(
        app_with: AppFactory) -> None:
    """Varying the scheme's case (or spaces, now refused) gave each spelling a budget of its
    own: 300 x 200 requests where the limit was 50."""
    app = app_with(rate_limit="6 per minute")
    client = app.test_client()
    key = make_key(app.extensions["weightsmith"].session_factory, "acme")
    spellings = ["Bearer", "bearer", "BEARER", "BeArEr"]
    statuses = [client.get("/v1/jobs", headers={
        "Authorization": f"{spellings[i % 4]} {key}"}).status_code for i in range(10)]
    assert statuses == [200] * 6 + [429] * 4
    other = make_key(app.extensions["weightsmith"].session_factory, "globex")
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {other}"}).status_code \
        == 200  # another key has a budget of its own


def test_failed_authentications_are_limited_per_address_without_more_lookups(
        app_with: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import auth

    app = app_with(auth_failure_limit="3 per minute")
    client = app.test_client()
    sessions = app.extensions["weightsmith"].session_factory
    good = make_key(sessions, "acme")
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {good}"}).status_code \
        == 200  # cached now
    lookups: list[str] = []
    real_lookup = auth._lookup_tenant

    def counting(token: str) -> str | None:
        lookups.append(token)
        return real_lookup(token)

    monkeypatch.setattr(auth, "_lookup_tenant", counting)
    statuses = [client.get("/v1/jobs", headers={"Authorization": f"Bearer wrong{i}"},
                           environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code
                for i in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    assert len(lookups) == 4  # the 4th failure found the budget spent; then no lookups
    refused = client.get("/v1/jobs", headers={"Authorization": "Bearer wrong9"},
                         environ_base={"REMOTE_ADDR": "10.0.0.1"})
    body = assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "failed authentications" in body["detail"]
    malformed = client.get("/v1/jobs", headers={"Authorization": "Bearer  x"},
                           environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert malformed.status_code == 429  # malformed headers count as failures too
    # Another address has its own budget; a key already known still works from this one.
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"},
                      environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 401
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {good}"},
                      environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200
    assert len(lookups) == 5


def test_keys_are_listed_by_prefix_and_revoked(client: FlaskClient, api_key: str,
                                               other_key: str, session_factory: Any) -> None:
    second = make_key(session_factory, "acme")
    auth = {"Authorization": f"Bearer {api_key}"}
    listed = client.get("/v1/keys", headers=auth).get_json()["items"]
    assert [k["prefix"] for k in listed] == [api_key[:8], second[:8]]
    assert all(set(k) == {"id", "prefix", "created_at", "revoked_at"} for k in listed)
    assert all(k["revoked_at"] is None for k in listed)
    assert api_key not in str(listed) and second not in str(listed)

    other_ids = [k["id"] for k in client.get(
        "/v1/keys", headers={"Authorization": f"Bearer {other_key}"}).get_json()["items"]]
    assert_problem(client.delete(f"/v1/keys/{other_ids[0]}", headers=auth), 404)
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {other_key}"}) \
        .status_code == 200  # another tenant's key cannot be revoked from here

    second_auth = {"Authorization": f"Bearer {second}"}
    assert client.get("/v1/jobs", headers=second_auth).status_code == 200  # cached
    assert client.delete(f"/v1/keys/{listed[1]['id']}", headers=auth).status_code == 204
    assert_problem(client.get("/v1/jobs", headers=second_auth), 401)  # at once, here
    assert client.delete(f"/v1/keys/{listed[1]['id']}", headers=auth).status_code == 204
    after = client.get("/v1/keys", headers=auth).get_json()["items"]
    assert after[1]["revoked_at"] is not None and after[0]["revoked_at"] is None
    assert_problem(client.delete("/v1/keys/key_nope", headers=auth), 404)
