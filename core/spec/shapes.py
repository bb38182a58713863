"""Shape inference for a model spec and an input shape, without building any arrays.

Used by the dry run and by dataset validation: it finds the mistakes a spec alone cannot
show (a kernel larger than its input, a dense layer fed an image), naming the layer. Each
layer spec answers its own output shape (``LayerSpec.output_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import SpecError
from core.spec.layers import Shape
from core.spec.model import ModelSpec

__all__ = ["Shape", "infer_shapes", "normalize_input_shape"]


def normalize_input_shape(input_shape: Sequence[int]) -> Shape:
    """One sample's shape: (F,), (C, H, W), or (H, W) read as (1, H, W) (one channel)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) not in (1, 3) or any(d < 1 for d in shape):
        raise SpecError("input_shape", f"a sample must be (features,), (H, W) or (C, H, W) "
                        f"with positive sizes, got {tuple(input_shape)}")
    return shape


def infer_shapes(model_spec: ModelSpec, input_shape: Sequence[int]) -> list[Shape]:
    """Each layer's output shape (no batch dimension), in order.

    Parameters
    ----------
    model_spec : the validated model
    input_shape : one sample, (F,), (H, W) or (C, H, W)

    Returns
    -------
    list of tuples, one per layer; the last is the network's output shape.

    Raises
    ------
    SpecError naming ``model.layers[i]`` (or its field) for the first layer that cannot
    take its input.
    """
    shape = normalize_input_shape(input_shape)
    shapes: list[Shape] = []
    for i, layer in enumerate(model_spec.layers):
        shape = layer.output_shape(shape, f"model.layers[{i}]")
        shapes.append(shape)
    return shapes
