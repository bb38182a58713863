"""Checkpoint metadata, per-layer weight statistics and the import form (DESIGN §4-5)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.schemas.common import ID_PATTERN


class CheckpointPath(BaseModel):
    checkpoint_id: str = Field(..., pattern=ID_PATTERN)


class LayerPath(BaseModel):
    checkpoint_id: str = Field(..., pattern=ID_PATTERN)
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.]{1,64}$", description='e.g. "0.weight"')


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
    layers: list[LayerStats]


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None = None


class LayerJson(BaseModel):
    name: str
    shape: list[int]
    dtype: str
    values: Any


IMPORT_BODY: dict[str, Any] = {
    "description": "A weights.npz of DESIGN §5 (`__spec__` inside, or the model spec as the "
    "`spec` form field / query parameter); read with allow_pickle=False, size-bounded.",
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "spec": {"type": "string", "description": "model spec JSON"},
                },
            }
        },
        "application/x-npz": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
