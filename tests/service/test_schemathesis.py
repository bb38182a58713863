"""Schemathesis against the app's own /openapi.json, in process: every operation, no 5xx, and
every response fits the schema its operation documents. `make fuzz` runs the bigger variant
(tests/service/test_fuzz.py); this one keeps CI short with a few examples per operation.

The operations are driven from one test with Hypothesis directly: schemathesis's lazy pytest
loader (`from_fixture`) reads a private pytest attribute that pytest 9 no longer has.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask_openapi3 import OpenAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]


def run_schemathesis(app: OpenAPI, seeded: dict[str, str], examples: int) -> dict[str, int]:
    """Fuzz every operation with `examples` cases; returns cases run per operation.

    Every other case gets the seeded resources' real ids in its path, so requests reach the
    code behind the lookups (predict, layers, resume ...), not only its 404.
    """
    # A short SSE stream: the events endpoint must answer within a case, not in 5 minutes.
    app.config.update(SSE_MAX_SECONDS=0.1, SSE_POLL_SECONDS=0.02)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {seeded['api_key']}"}
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        counts[operation.label] = 0
        _fuzz_one(operation, headers, examples, counts, seeded)()
    return counts


def _fuzz_one(operation: Any, headers: dict[str, str], examples: int,
              counts: dict[str, int], ids: dict[str, str]) -> Any:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        counts[operation.label] += 1
        if counts[operation.label] % 2 and case.path_parameters:
            for name in case.path_parameters:
                if name in ids:
                    case.path_parameters[name] = ids[name]
        case.call_and_validate(headers=headers, checks=CHECKS)

    return check


def documented_operations(app: OpenAPI) -> int:
    """How many operations /openapi.json lists: each must have been fuzzed."""
    doc = app.test_client().get("/openapi.json").get_json()
    return sum(len(item) for item in doc["paths"].values())


def test_every_operation_conforms(app: OpenAPI, seeded: dict[str, str]) -> None:
    counts = run_schemathesis(app, seeded, examples=30)
    assert len(counts) == documented_operations(app) > 40
    assert all(n >= 1 for n in counts.values()), counts
