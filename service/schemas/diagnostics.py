"""A job's per-layer diagnostics (docs/diagnostics.md): the query, the series, the warnings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from service.schemas.common import MAX_INT32


class DiagnosticsQuery(BaseModel):
    layer: int | None = Field(None, ge=0, le=MAX_INT32,
                              description="only this layer (its index in model.layers)")
    after_epoch: int = Field(0, ge=0, le=MAX_INT32, description="only epochs after this one")


class DiagnosticWarning(BaseModel):
    layer: int = Field(..., description="the layer's index in model.layers")
    type: str | None = Field(None, description="the layer's type")
    kind: str = Field(..., description="update_ratio_low, update_ratio_high or dead_units")
    epoch: int = Field(..., description="the epoch that met the rule (the 3rd in a row for "
                       "an update ratio)")
    value: float | None = Field(None, description="the update ratio or dead share then")
    message: str


class LayerSeries(BaseModel):
    layer: int = Field(..., description="the layer's index in model.layers")
    type: str | None = None
    epochs: list[int]
    weight_norm: list[float | None] | None = Field(
        None, description="‖θ‖₂ of all the layer's parameters at each epoch's end")
    grad_norm: list[float | None] | None = Field(
        None, description="sqrt(mean over the epoch's batches of ‖g_b‖₂²)")
    update_ratio: list[float | None] | None = Field(
        None, description="‖θ_end - θ_start‖₂ / ‖θ_start‖₂ over the epoch")
    dead_fraction: list[float | None] | None = Field(
        None, description="ReLU layers: the share of units zero for the whole last batch")


class Diagnostics(BaseModel):
    job_id: str
    enabled: bool = Field(..., description="the spec's training.diagnostics")
    layers: list[LayerSeries]
    warnings: list[DiagnosticWarning]
