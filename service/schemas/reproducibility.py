"""A job's manifest, and the reproduction verdict shown on a job."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CheckpointDigest(BaseModel):
    id: str
    epoch: int
    sha256: str = Field(..., description="of the stored checkpoint's bytes")
    weights_sha256: str = Field(..., description="of its weight arrays alone "
                                                 "(core.reproducibility.arrays_sha256)")


class DatasetDigest(BaseModel):
    reference: str = Field(..., description='the spec\'s "dataset"')
    sha256: str = Field(..., description="of the uploaded file, or of a builtin's arrays")


class Manifest(BaseModel):
    job_id: str
    spec_sha256: str = Field(..., description="of the stored spec's canonical JSON")
    dataset: DatasetDigest
    seed: int
    dtype: str
    environment: dict[str, Any] | None = Field(
        ..., description="the last run's weightsmith version and commit, python, numpy, "
                         "platform, hostname and BLAS libraries with their thread counts")
    checkpoints: dict[str, CheckpointDigest | None] = Field(
        ..., description='"final" and "best"')
