"""Issue 5, security: nothing secret reaches the logs.

Every request below carries an API key (valid or not); the whole session is logged at DEBUG
from every logger (Flask, SQLAlchemy's engine echo included), and no record may contain a
key's plaintext. Keys are stored as sha256 only, so the hash may appear; the key may not.
"""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient

from tests.service.helpers import mlp_spec, upload_csv


def test_no_api_key_appears_in_any_log_record(
    client: FlaskClient, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    wrong = "ws_" + "x" * 40
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # SQL and parameters
        dataset = upload_csv(client, auth, n=30, features=3, classes=3)["id"]
        job = client.post("/v1/jobs", json=mlp_spec(dataset), headers=auth).get_json()
        client.get(f"/v1/jobs/{job['id']}", headers=auth)
        client.get("/v1/jobs", headers={"Authorization": f"Bearer {wrong}"})
        client.post("/v1/jobs", json={"model": "bad"}, headers=auth)
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    text = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    assert caplog.records, "the session logged nothing: the check would be vacuous"
    assert "SELECT" in text  # the engine echo was captured, parameters included
    assert api_key not in text
    assert wrong not in text
