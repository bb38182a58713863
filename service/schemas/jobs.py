"""Job submission, the job resource, its metrics history and the dry-run report (docs/api.md).

The spec body is validated by `core.spec` alone (its errors come back as 422 with the exact
field path); the OpenAPI document describes it with `core.spec.schema`'s JSON Schema, which
is generated from the same declarations the parser reads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import DEFAULT_REF_TEMPLATE

from core.spec.schema import job_spec_schema
from service.schemas.common import ID_PATTERN, MAX_INT32
from service.schemas.diagnostics import DiagnosticWarning
from store.statuses import JOB_STATUSES

JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]


# examples/digits_mlp.json (tests/service/test_openapi_spec.py keeps them equal): "Try it out"
# in /docs submits it as is.
JOB_SPEC_EXAMPLE: dict[str, Any] = {
    "name": "digits-mlp",
    "dataset": "builtin:digits",
    "model": {
        "layers": [
            {"type": "dense", "units": 128, "activation": "relu", "weight_init": "he_normal"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 10},
        ]
    },
    "loss": {"type": "cross_entropy"},
    "optimizer": {"type": "adam", "learning_rate": 0.001},
    "training": {"epochs": 20, "batch_size": 32, "seed": 0, "validation_split": 0.1,
                 "standardize": True},
    "checkpoints": {"every_epochs": 1, "keep_last": 3, "keep_best": 1, "monitor": "val_loss"},
}


class JobSpecBody(BaseModel):
    """A job spec (docs/spec.md). Parsed as an open object; core.spec checks it."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def model_json_schema(cls, by_alias: bool = True,  # type: ignore[override]
                          ref_template: str = DEFAULT_REF_TEMPLATE,
                          *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The generated job spec schema (flask-openapi3 moves its ``$defs`` to components)."""
        return {**job_spec_schema(ref_template), "example": JOB_SPEC_EXAMPLE}


# The header as documented. It is checked by service.api.common.check_idempotency_key (a
# 400 naming the header), not by a pydantic header model: flask-openapi3 validates such a
# model against every header of the request, which cost ~0.25 ms of each submission.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 visible ASCII characters; the same key and body return the same job",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


class JobPath(BaseModel):
    job_id: str = Field(..., pattern=ID_PATTERN)


class JobListQuery(BaseModel):
    status: JobStatus | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=200)


class Progress(BaseModel):
    epoch: int
    epochs: int


class JobOut(BaseModel):
    id: str
    name: str | None = None
    status: JobStatus
    spec: dict[str, Any]
    dataset_id: str | None = None
    progress: Progress
    latest: dict[str, Any]
    best: dict[str, Any]
    stop_reason: str | None = None
    failure_reason: str | None = None
    attempts: int
    cancel_requested: bool = False
    sweep_id: str | None = None  # the sweep whose trial this job is (docs/sweeps.md)
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    parent: dict[str, Any] | None = Field(
        None, description='a fork\'s origin: {"job_id", "checkpoint_id", "epoch", '
        '"optimizer_state"}')
    reproduction: dict[str, Any] | None = Field(
        None, description='{"of" or "by": job id, "identical", '
        '"first_divergent_epoch", "epochs_compared", "checkpoints_compared"} (null verdict '
        'until the reproduction ends)')
    warnings: list[DiagnosticWarning] = Field(
        default_factory=list, description="per-layer diagnostics' warnings, oldest first "
        "(docs/diagnostics.md)")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = None


class ResumeBody(BaseModel):
    """POST /v1/jobs/{id}/resume's optional body (no body: the same epochs)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    epochs: int | None = Field(None, ge=1, description="more epochs to train, on top of the spec's")


class MetricsQuery(BaseModel):
    after_epoch: int = Field(0, ge=0, le=MAX_INT32)
    limit: int = Field(1000, ge=1, le=10_000)


class MetricsPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = None


class LayerReport(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    type: str
    output_shape: list[int]
    params: int
    flops: int
    memory_bytes: int


class DryRunReport(BaseModel):
    model_config = ConfigDict(extra="allow")
    layers: list[LayerReport]
    total_params: int
    flops_per_epoch: int
    memory_bytes: int
    input_shape: list[int]
    n_samples: int
    dataset_id: str | None = Field(
        None, description="the uploaded dataset the spec's `dataset` (an id or a name: the "
        "newest with it) resolved to; a submitted job keeps it as its `dataset_id`; null "
        "for a builtin")
