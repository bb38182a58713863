"""Predict request and response (docs/api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] = Field(
        ..., description="rows of features, or (N, H, W) / (N, C, H, W) nested lists of numbers"
    )
    checkpoint: str = Field(
        "best", pattern=r"^[A-Za-z0-9_:\-]{1,64}$",
        description='"best", "latest" or a checkpoint id (job predict only)',
    )


class PredictOut(BaseModel):
    checkpoint_id: str = Field(
        ..., description="the checkpoint that answered: what `best`, `latest`, an alias or the "
        "id resolved to")
    model: dict[str, Any] | None = Field(
        None, description='POST /v1/models/{name}/predict: {"name", "version"} that answered')
    outputs: list[Any] = Field(
        ..., description="per row: softmax/sigmoid probabilities for a classification loss, "
        "else the raw outputs")
    classes: list[Any] | None = Field(
        None, description="per row: the predicted class's label (the training data's, or the "
        "imported weights.npz's `__classes__`; else its index); null for raw outputs")
