"""The ONNX export's query: the opset, with the range and default ``export.onnx`` offers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from export.onnx.opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


class OnnxQuery(BaseModel):
    opset: int = Field(
        DEFAULT_OPSET, ge=MIN_OPSET, le=MAX_OPSET,
        description=f"ONNX opset of the model ({MIN_OPSET}-{MAX_OPSET}); the default loads "
        "in onnxruntime 1.16 and later",
    )
