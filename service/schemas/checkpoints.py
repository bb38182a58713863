"""Checkpoint metadata, per-layer weight statistics and the import form (docs/api.md,
docs/checkpoint-format.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from core.spec.training import LOSS_TYPES
from service.schemas.common import ID_PATTERN

# The loss registry's names (a tuple subscript is Literal's list of values).
LossType = Literal[LOSS_TYPES]  # type: ignore[valid-type]


class CheckpointPath(BaseModel):
    checkpoint_id: str = Field(..., pattern=ID_PATTERN)


class LayerPath(BaseModel):
    checkpoint_id: str = Field(..., pattern=ID_PATTERN)
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.]{1,64}$", description='e.g. "0.weight"')


class CheckpointImportQuery(BaseModel):
    """The import's options, as query parameters or as multipart form fields."""

    spec: str | None = Field(
        None, description="the model spec as JSON, `{\"layers\": [...]}` as a job spec's `model` "
        "(docs/spec.md), when the .npz has no `__spec__`"
    )
    loss: LossType | None = Field(
        None,
        description="the loss the weights were trained with; it sets predict's output link "
        "(cross_entropy: softmax, binary_cross_entropy: sigmoid, both also return `classes`). "
        "weights.npz does not record it: without it predict returns the raw outputs.",
    )


class CheckpointOut(BaseModel):
    id: str
    job_id: str | None = None
    epoch: int | None = None
    kind: str
    metrics: dict[str, Any]
    size_bytes: int
    sha256: str
    created_at: str | None = None


class LayerStats(BaseModel):
    name: str
    shape: list[int]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    frobenius: float | None


class CheckpointDetail(CheckpointOut):
    model_spec: dict[str, Any] | None = None
    loss: LossType | None = Field(
        None, description="the loss that sets predict's link; null: an import without one"
    )
    layers: list[LayerStats]


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None = None


class LayerJson(BaseModel):
    name: str
    shape: list[int]
    dtype: str
    values: Any



def _form_field(name: str) -> dict[str, Any]:
    """A query option as a multipart field: present or absent, never null."""
    prop = CheckpointImportQuery.model_json_schema()["properties"][name]
    (kind,) = [branch for branch in prop["anyOf"] if branch.get("type") != "null"]
    return {**kind, "description": prop["description"]}


IMPORT_BODY: dict[str, Any] = {
    "description": "A weights.npz (docs/checkpoint-format.md: `__spec__` inside, or the model "
    "spec as the `spec` form field / query parameter; the optional `loss` likewise); read "
    "with allow_pickle=False, size-bounded.",
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "spec": _form_field("spec"),
                    "loss": _form_field("loss"),
                },
            }
        },
        "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
