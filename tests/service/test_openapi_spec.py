"""/openapi.json describes the job body with core.spec's generated JSON Schema.

The document serves the schema unchanged (flask-openapi3 re-parses component schemas, and a
keyword it did not know would silently vanish), "Try it out" submits a real example, and the
API keeps answering core.spec's 422 that names the field: the schema describes, the parser
decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask.testing import FlaskClient

from core.spec.schema import DIALECT, ROOT, job_spec_schema
from service.schemas.jobs import JOB_SPEC_EXAMPLE
from tests.service.helpers import assert_problem

REF = "#/components/schemas/{model}"
EXAMPLES = Path(__file__).parents[2] / "examples"
SPEC_BODIES = [("post", "/v1/jobs"), ("post", "/v1/jobs:validate")]


@pytest.fixture
def doc(client: FlaskClient) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").get_json()
    return document


def served_validator(doc: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """Validates against JobSpec as /openapi.json has it (refs into its components)."""
    schema = {"$schema": DIALECT, "$ref": REF.format(model=ROOT),
              "components": {"schemas": doc["components"]["schemas"]}}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(("method", "path"), SPEC_BODIES)
def test_spec_bodies_reference_the_job_spec(doc: dict[str, Any], method: str,
                                            path: str) -> None:
    body = doc["paths"][path][method]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": REF.format(model=ROOT)}


def test_the_document_serves_the_generated_schema_unchanged(doc: dict[str, Any]) -> None:
    generated = job_spec_schema(REF)
    components = doc["components"]["schemas"]
    for name, definition in generated.pop("$defs").items():
        assert components[name] == definition, name
    assert components[ROOT] == {**generated, "example": JOB_SPEC_EXAMPLE}


def test_try_it_out_example_is_digits_mlp(doc: dict[str, Any]) -> None:
    assert json.loads((EXAMPLES / "digits_mlp.json").read_text()) == JOB_SPEC_EXAMPLE
    assert doc["components"]["schemas"][ROOT]["example"] == JOB_SPEC_EXAMPLE


@pytest.mark.parametrize("path", sorted(p for p in EXAMPLES.glob("*.json")
                                         if not p.stem.endswith("_sweep")),  # a sweep body
                         ids=lambda p: p.name)
def test_every_example_validates_against_the_served_schema(doc: dict[str, Any],
                                                          path: Path) -> None:
    errors = [e.message for e in served_validator(doc).iter_errors(json.loads(path.read_text()))]
    assert errors == []


def test_the_example_dry_runs(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/jobs:validate", json=JOB_SPEC_EXAMPLE, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["total_params"] == 64 * 128 + 128 + 128 * 10 + 10


REFUSED = [
    ({"loss": {"type": "nll"}}, "loss.type", "unknown loss 'nll'"),
    ({"optimizer": {"type": "adamx"}}, "optimizer.type", "unknown optimizer 'adamx'"),
    ({"training": {"epochs": 0}}, "training.epochs", "must be a positive integer, got 0"),
]


@pytest.mark.parametrize(("patch", "field", "message"), REFUSED, ids=[r[1] for r in REFUSED])
def test_the_api_still_answers_core_specs_422(client: FlaskClient, auth: dict[str, str],
                                              doc: dict[str, Any], patch: dict[str, Any],
                                              field: str, message: str) -> None:
    bad = {**JOB_SPEC_EXAMPLE, **patch}
    assert not served_validator(doc).is_valid(bad)
    response = client.post("/v1/jobs:validate", json=bad, headers=auth)
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert message in problem["errors"][0]["message"]
