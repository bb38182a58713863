"""Batch prediction requests and responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import ID_PATTERN, MAX_INT32
from service.schemas.models import ALIAS_PATTERN, MODEL_NAME_PATTERN


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=MODEL_NAME_PATTERN)
    alias: str | None = Field(None, pattern=ALIAS_PATTERN)
    version: int | None = Field(None, ge=1, le=MAX_INT32)

    @model_validator(mode="after")
    def _one_selector(self) -> ModelRef:
        if self.alias is not None and self.version is not None:
            raise ValueError("give alias or version, not both")
        return self


class BatchPredictionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelRef | None = Field(None, description='{"name", "alias"|"version"}; neither: '
                                   "the newest version")
    checkpoint_id: str | None = Field(None, pattern=ID_PATTERN)
    job_id: str | None = Field(None, pattern=ID_PATTERN,
                               description="the job's best checkpoint")
    dataset_id: str = Field(..., max_length=200,
                            description="an uploaded dataset id or builtin:<name>")
    format: Literal["csv", "npy"] = "csv"

    @model_validator(mode="after")
    def _one_source(self) -> BatchPredictionBody:
        given = [k for k in ("model", "checkpoint_id", "job_id") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of model, checkpoint_id, job_id")
        return self


class BatchPredictionPath(BaseModel):
    batch_id: str = Field(..., pattern=ID_PATTERN)


class BatchPredictionOut(BaseModel):
    id: str
    status: str
    checkpoint_id: str
    dataset_id: str
    format: str
    rows_total: int
    rows_done: int
    error_count: int
    errors: list[dict[str, Any]] = Field(
        ..., description='the first rows that could not be scored: [{"row", "message"}]')
    errors_listed_max: int
    failure_reason: str | None = None
    attempts: int
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
