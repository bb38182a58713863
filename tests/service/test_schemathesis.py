"""Schemathesis against the app's own /openapi.json, in process: every operation, no 5xx, and
every response fits the schema its operation documents. `make fuzz` runs the bigger variant
(tests/service/test_fuzz.py); this one keeps CI short with a few examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.settings import Settings
from service.app import create_app

CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def api_schema(settings: Settings, migrated: None, seeded: dict[str, str]) -> object:
    app = create_app(settings, testing=True)
    # A short SSE stream: the events endpoint must answer within a case, not in 5 minutes.
    app.config.update(SSE_MAX_SECONDS=0.2, SSE_POLL_SECONDS=0.05)
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case, seeded: dict[str, str]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded['api_key']}"},
                           checks=CHECKS)
