"""The learning-rate range test: its request and its result (docs/lr-range-test.md).

The body is open, as a job spec is: core.lr_range_test owns the rules of ``min_lr``,
``max_lr`` and ``steps`` (422 naming the field), core.spec those of ``spec`` (``spec.<field>``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.lr_range_test import MIN_STEPS, PARAMS


def _param(name: str) -> Any:
    return next(p for p in PARAMS if p.name == name)


class LrRangeTestBody(BaseModel):
    """A job spec and the range of rates to sweep through, one batch at a time."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {
            "spec": {"dataset": "builtin:digits",
                     "model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                                          {"type": "dense", "units": 10}]},
                     "optimizer": {"type": "sgd", "momentum": 0.9},
                     "training": {"batch_size": 32, "seed": 0}},
            "min_lr": 1e-5, "max_lr": 10, "steps": 100,
        }},
    )

    spec: Any = Field(..., json_schema_extra={"type": "object"},
                      description="a job spec (docs/spec.md); its optimizer's learning_rate "
                                  "and lr_schedule are the test's to set")
    min_lr: Any = Field(None, json_schema_extra={"type": "number", "exclusiveMinimum": 0},
                        description=f"{_param('min_lr').doc} > 0; default "
                                          f"{_param('min_lr').default:g}")
    max_lr: Any = Field(None, json_schema_extra={"type": "number", "exclusiveMinimum": 0},
                        description=f"{_param('max_lr').doc} Default "
                                          f"{_param('max_lr').default:g}")
    steps: Any = Field(None, json_schema_extra={"type": "integer", "minimum": MIN_STEPS},
                       description=f"{_param('steps').doc} At least "
                                         f"{_param('steps').low:g}, at most "
                                         "WEIGHTSMITH_MAX_LR_RANGE_STEPS; default "
                                         f"{_param('steps').default}")


class RangePoint(BaseModel):
    lr: float = Field(..., description="the rate of this batch's step")
    loss: float = Field(..., description="the batch's loss before its step")
    smoothed_loss: float = Field(..., description="bias-corrected moving average, beta 0.98")


class Suggestion(BaseModel):
    lr: float
    index: int = Field(..., description="its point in `series`")
    smoothed_loss: float


class LrRangeTestOut(BaseModel):
    job_id: str
    status: str = Field(..., description="the job's status")
    stop_reason: str | None = Field(
        ..., description="steps_done, loss_exceeded (smoothed loss > 4 x its minimum), "
                         "loss_not_finite, or the job's own (cancelled, max_runtime)")
    min_lr: float
    max_lr: float
    steps: int
    series: list[RangePoint] = Field(..., description="empty until the job has ended")
    min_smoothed_loss: float | None
    suggestion: Suggestion | None = Field(
        ..., description="the steepest descent of the smoothed loss against ln(lr); null "
                         "before the end, or when the loss never fell")
