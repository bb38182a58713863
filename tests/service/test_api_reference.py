"""docs/api.md's endpoint list and shapes are what the OpenAPI document generates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from service.api_reference import BEGIN, COMMAND, END, anchor, render

DOC = Path(__file__).parents[2] / "docs" / "api.md"


def committed_block() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN):text.index(END) + len(END)] + "\n"


def test_docs_api_md_is_up_to_date(client: FlaskClient) -> None:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    assert committed_block() == render(doc), f"docs/api.md is stale; regenerate it: {COMMAND}"


def test_every_operation_and_its_errors_are_listed(client: FlaskClient) -> None:
    doc: dict[str, Any] = client.get("/openapi.json").get_json()
    block = render(doc)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert f"### {method.upper()} {path}\n" in block
            errors = [s for s in op["responses"] if s.startswith(("4", "5"))]
            if errors:
                assert "Errors (problem+json): " + ", ".join(errors) in block


def test_every_shape_link_has_its_heading(client: FlaskClient) -> None:
    block = render(client.get("/openapi.json").get_json())
    headings = {anchor(h) for h in re.findall(r"^#{2,3} (.+)$", block, flags=re.M)}
    links = set(re.findall(r"\]\((#[^)]+)\)", block))
    assert links and links <= headings, sorted(links - headings)
