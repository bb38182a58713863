"""Shape inference for a model spec and an input shape, without building any arrays.

Used by the dry run and by dataset validation: it finds the mistakes a spec alone cannot
show (a kernel larger than its input, a dense layer fed an image), naming the layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.errors import SpecError
from core.spec.layers import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    FlattenSpec,
    LayerSpec,
    MaxPool2DSpec,
)
from core.spec.model import ModelSpec

Shape = tuple[int, ...]


def normalize_input_shape(input_shape: Sequence[int]) -> Shape:
    """One sample's shape: (F,), (C, H, W), or (H, W) read as (1, H, W) as DESIGN §3 says."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) not in (1, 3) or any(d < 1 for d in shape):
        raise SpecError("input_shape", f"a sample must be (features,), (H, W) or (C, H, W) "
                        f"with positive sizes, got {tuple(input_shape)}")
    return shape


def conv_pads(layer: Conv2DSpec) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zeros, as torch: "same" puts the odd one at the end."""
    kh, kw = layer.kernel_hw
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if layer.padding == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        return (top, kh - 1 - top, left, kw - 1 - left)
    p = int(layer.padding)
    return (p, p, p, p)


def layer_output_shape(layer: LayerSpec, shape: Shape, path: str) -> Shape:
    """The output shape of one layer for input ``shape``; SpecError at ``path`` otherwise."""
    if isinstance(layer, DenseSpec):
        if len(shape) != 1:
            raise SpecError(path, f"dense needs flat (features,) inputs but gets {shape}; "
                            "add a flatten layer before it")
        return (layer.units,)
    if isinstance(layer, FlattenSpec):
        return (math.prod(shape),)
    if isinstance(layer, BatchNormSpec) or layer.type in ("dropout", "activation"):
        return shape
    if len(shape) != 3:
        raise SpecError(path, f"{layer.type} needs (C, H, W) inputs but gets {shape}")
    c, h, w = shape
    if isinstance(layer, Conv2DSpec):
        kh, kw = layer.kernel_hw
        top, bottom, left, right = conv_pads(layer)
        hp, wp = h + top + bottom, w + left + right
        if kh > hp or kw > wp:
            raise SpecError(f"{path}.kernel_size", f"kernel {kh}x{kw} is larger than its "
                            f"(padded) input {hp}x{wp}")
        return (layer.filters, (hp - kh) // layer.stride + 1, (wp - kw) // layer.stride + 1)
    assert isinstance(layer, MaxPool2DSpec | AvgPool2DSpec)
    k, s = layer.pool_size, int(layer.stride or layer.pool_size)
    if k > h or k > w:
        raise SpecError(f"{path}.pool_size", f"pool {k}x{k} is larger than its input {h}x{w}")
    return (c, (h - k) // s + 1, (w - k) // s + 1)


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
        shape = layer_output_shape(layer, shape, f"model.layers[{i}]")
        shapes.append(shape)
    return shapes
