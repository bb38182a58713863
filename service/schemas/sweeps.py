"""The sweep resource, its trials and the submission body (docs/sweeps.md).

The body is open here, as a job spec is: ``core.sweeps`` is the one place that knows the
rules, and its errors come back as 422 naming the field (``space["<path>"]``, ``search.*``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import ID_PATTERN

SweepStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class SweepBody(BaseModel):
    """A sweep: a base job spec, a search space, a search method, an optional scheduler."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {
            "name": "digits-lr-units",
            "base": {"dataset": "builtin:digits",
                     "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                                          {"type": "dense", "units": 10}]},
                     "training": {"epochs": 27, "validation_split": 0.2}},
            "space": {"optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
                      "model.layers[0].units": {"choice": [32, 64, 128]}},
            "search": {"method": "random", "seed": 7, "max_trials": 27, "max_concurrent": 4},
            "scheduler": {"type": "asha", "metric": "val_accuracy", "mode": "max",
                          "grace_epochs": 1, "reduction_factor": 3},
        }},
    )

    name: Any = None
    base: Any = None
    space: Any = None


class SweepPath(BaseModel):
    sweep_id: str = Field(..., pattern=ID_PATTERN)


class TrialsQuery(BaseModel):
    order: Literal["best", "index"] = "index"
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=40, pattern=r"^[0-9]{1,9}$",
                               description="next_cursor of the last page")


class TrialCounts(BaseModel):
    total: int
    queued: int
    running: int
    succeeded: int
    pruned: int
    failed: int


class SweepOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str | None = None
    status: SweepStatus
    stop_reason: str | None = None
    spec: dict[str, Any]
    trials: TrialCounts
    best: dict[str, Any] | None = None
    epochs_run: int
    epochs_budget: int
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class SweepPage(BaseModel):
    items: list[SweepOut]
    next_cursor: str | None = None


class TrialOut(BaseModel):
    index: int
    params: dict[str, Any]
    job_id: str | None = None
    status: str
    stop_reason: str | None = None
    attempts: int
    epochs_run: int
    best: dict[str, Any] | None = None


class TrialPage(BaseModel):
    items: list[TrialOut]
    next_cursor: str | None = None
