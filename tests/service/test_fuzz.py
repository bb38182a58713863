"""`make fuzz`: Schemathesis with at least 5,000 generated cases over all operations.

Marked `fuzz` and skipped by the normal suite (too long for every CI run). 22 operations x
250 examples = 5,500 cases; each must answer without a 5xx and fit its documented schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from config.settings import Settings
from service.app import create_app
from tests.service.test_schemathesis import CHECKS

EXAMPLES_PER_OPERATION = 250

pytestmark = pytest.mark.fuzz


@pytest.fixture
def fuzz_schema(settings: Settings, migrated: None, seeded: dict[str, str]) -> object:
    app = create_app(settings, testing=True)
    app.config.update(SSE_MAX_SECONDS=0.2, SSE_POLL_SECONDS=0.05)
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_operation(case: schemathesis.Case, seeded: dict[str, str]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {seeded['api_key']}"},
                           checks=CHECKS)
