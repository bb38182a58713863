"""A fork: which checkpoint, what to change, and whether the optimizer's state goes along."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import ID_PATTERN, MAX_INT32


class ForkBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "epoch": 10, "optimizer_state": "reset",
        "overrides": {"optimizer": {"learning_rate": 0.0001}, "training": {"epochs": 5}}}})

    checkpoint_id: str | None = Field(None, pattern=ID_PATTERN)
    epoch: int | None = Field(None, ge=1, le=MAX_INT32, description="the job's checkpoint at "
                              "this epoch (neither: its latest checkpoint)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="merged into the parent's spec (objects merge key by "
        "key, an object with another `type` and anything else replace); checked like a new "
        "spec")
    optimizer_state: Literal["keep", "reset"] = Field(
        "keep", description="keep: continue the parent's optimizer, schedule and epoch count, "
        "as a resume would; reset: its weights only, training starts at epoch 1")

    @model_validator(mode="after")
    def one_checkpoint(self) -> ForkBody:
        if self.checkpoint_id is not None and self.epoch is not None:
            raise ValueError("give checkpoint_id or epoch, not both")
        return self
