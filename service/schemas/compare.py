"""Comparing runs: the query and the comparison document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Ids as in ID_PATTERN, 2 to MAX_COMPARED of them, comma-separated.
MAX_COMPARED = 20
IDS_PATTERN = r"^[A-Za-z0-9_:\-]{1,64}(,[A-Za-z0-9_:\-]{1,64}){1,19}$"


class CompareQuery(BaseModel):
    ids: str = Field(..., pattern=IDS_PATTERN,
                     description=f"2 to {MAX_COMPARED} job ids, comma-separated")


class ComparedJob(BaseModel):
    id: str
    name: str
    status: str
    epochs_done: int


class SpecDifference(BaseModel):
    path: str = Field(..., description='a flattened spec path, e.g. "model.layers[0].units"')
    values: dict[str, Any] = Field(..., description="job id -> its value (null: absent)")


class MetricSummary(BaseModel):
    best: float | None = None
    best_epoch: int | None = None
    last: float | None = None
    last_epoch: int | None = None


class Comparison(BaseModel):
    jobs: list[ComparedJob]
    spec_differences: list[SpecDifference]
    metrics: dict[str, dict[str, MetricSummary]] = Field(
        ..., description="metric name -> job id -> its best and last values")
