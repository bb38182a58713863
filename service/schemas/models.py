"""The model registry: models, versions, aliases and their history."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import ID_PATTERN, MAX_INT32

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_\-]{0,63}$"


class ModelBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"name": "digits", "description": "8x8 digit classifier"}})

    name: str = Field(..., pattern=MODEL_NAME_PATTERN)
    description: str | None = Field(None, max_length=2000)


class ModelPath(BaseModel):
    name: str = Field(..., pattern=MODEL_NAME_PATTERN)


class VersionPath(BaseModel):
    name: str = Field(..., pattern=MODEL_NAME_PATTERN)
    version: int = Field(..., ge=1, le=MAX_INT32)


class AliasPath(BaseModel):
    name: str = Field(..., pattern=MODEL_NAME_PATTERN)
    alias: str = Field(..., pattern=ALIAS_PATTERN)


class VersionBody(BaseModel):
    """A checkpoint by id, or a job's best or latest one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "example": {"job_id": "job_01M8DHMEH6YQ12TB2SA0YE74HP", "checkpoint": "best"}})

    checkpoint_id: str | None = Field(None, pattern=ID_PATTERN)
    job_id: str | None = Field(None, pattern=ID_PATTERN)
    checkpoint: Literal["best", "latest"] = "best"

    @model_validator(mode="after")
    def one_source(self) -> VersionBody:
        if (self.checkpoint_id is None) == (self.job_id is None):
            raise ValueError("give exactly one of checkpoint_id and job_id")
        return self


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(..., ge=1, le=MAX_INT32)


class ModelPredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(..., description="rows, as POST /v1/jobs/{id}/predict takes")
    alias: str | None = Field(None, pattern=ALIAS_PATTERN)
    version: int | None = Field(None, ge=1, le=MAX_INT32)

    @model_validator(mode="after")
    def at_most_one(self) -> ModelPredictBody:
        if self.alias is not None and self.version is not None:
            raise ValueError("give alias or version, not both (neither: the newest version)")
        return self


class VersionOut(BaseModel):
    model: str
    version: int
    checkpoint_id: str
    checkpoint_sha256: str
    job_id: str | None
    dataset_id: str | None
    dataset_sha256: str | None
    metrics: dict[str, Any]
    aliases: list[str]
    created_at: str


class ModelOut(BaseModel):
    id: str
    name: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    created_at: str


class ModelPage(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None = None


class VersionPage(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None = None


class AliasSpan(BaseModel):
    version: int
    from_: str = Field(..., alias="from")
    to: str | None


class AliasHistory(BaseModel):
    items: list[AliasSpan]
