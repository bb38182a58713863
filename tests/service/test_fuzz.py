"""`make fuzz`: Schemathesis with at least 5,000 generated cases over all operations.

Marked `fuzz` and skipped by the normal suite (too long for every CI run). Every operation
/openapi.json lists, up to 280 examples each (the probes without inputs make one case each);
each case must answer without a 5xx and fit its documented schema.
"""

from __future__ import annotations

import pytest
from flask_openapi3 import OpenAPI

from tests.service.test_schemathesis import documented_operations, run_schemathesis

EXAMPLES_PER_OPERATION = 280


@pytest.mark.fuzz
def test_fuzz_every_operation(app: OpenAPI, seeded: dict[str, str]) -> None:
    counts = run_schemathesis(app, seeded, examples=EXAMPLES_PER_OPERATION)
    total = sum(counts.values())
    print(f"\nschemathesis: {total} cases over {len(counts)} operations: {counts}")
    assert len(counts) == documented_operations(app)
    assert total >= 5_000
