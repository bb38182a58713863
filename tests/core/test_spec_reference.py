"""docs/spec.md is what core.spec.reference generates from the Params the parser reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.spec.job import JOB_PARAMS
from core.spec.params import Param
from core.spec.reference import COMMAND, anchor, example, render
from core.spec.schema import REGISTRIES
from core.spec.training import (
    CHECKPOINT_PARAMS,
    EARLY_STOPPING_PARAMS,
    REGULARIZATION_PARAMS,
    TRAINING_PARAMS,
)

DOC = Path(__file__).parents[2] / "docs" / "spec.md"


def test_docs_spec_md_is_up_to_date() -> None:
    assert DOC.read_text() == render(), f"docs/spec.md is stale; regenerate it: {COMMAND}"


def test_every_link_inside_the_page_has_its_heading() -> None:
    text = render()
    headings = {anchor(h) for h in re.findall(r"^#{2,3} (.+)$", text, flags=re.M)}
    links = set(re.findall(r"\]\((#[^)]+)\)", text))
    assert links and links <= headings, sorted(links - headings)


def registry_params() -> list[Param]:
    return [p for reg in REGISTRIES for name in reg.entries for p in reg.params(name)]


SECTIONS = [*JOB_PARAMS, *TRAINING_PARAMS, *EARLY_STOPPING_PARAMS, *REGULARIZATION_PARAMS,
            *CHECKPOINT_PARAMS]
ALL = [*SECTIONS, *registry_params()]


@pytest.mark.parametrize("param", ALL, ids=[p.name for p in ALL])
def test_every_field_is_documented(param: Param) -> None:
    assert param.doc, f"{param.name} has no doc"
    assert f"| `{param.name}` |" in render()


@pytest.mark.parametrize("param", SECTIONS, ids=[p.name for p in SECTIONS])
def test_every_section_field_has_an_example(param: Param) -> None:
    assert example(param) is not None, f"{param.name} has neither an example nor a default"


def test_the_anchor_is_githubs() -> None:
    assert anchor("loss: cross_entropy") == "#loss-cross_entropy"
    assert anchor("training.early_stopping") == "#trainingearly_stopping"
