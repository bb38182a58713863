"""The dry run behind ``POST /v1/jobs:validate``: shapes, parameters, FLOPs and memory.

Nothing is allocated: every figure comes from the spec and the input shape. FLOPs count a
multiply-add as 2; an epoch is forward + backward (about 3x the forward cost) over the
training rows plus one forward pass over the validation rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.spec.job import Spec
from core.spec.layers import Conv2DSpec, DenseSpec, LayerSpec
from core.spec.optim import OptimizerSpec
from core.spec.shapes import Shape, infer_shapes, normalize_input_shape

BACKWARD_FACTOR = 3  # forward + backward ≈ 3x forward (two GEMMs back for each one forward)

# Element-wise cost per output value of an activation (exp/erf count a few FLOPs).
_ACTIVATION_FLOPS = {"linear": 0, "relu": 1, "leaky_relu": 2, "elu": 3, "gelu": 8,
                     "sigmoid": 4, "tanh": 4, "softmax": 5, "softplus": 4, "silu": 5}


def layer_params(layer: LayerSpec, in_shape: Shape) -> int:
    """Trainable scalars of one layer (batch_norm's running statistics are buffers)."""
    if isinstance(layer, DenseSpec):
        return in_shape[0] * layer.units + layer.units
    if isinstance(layer, Conv2DSpec):
        kh, kw = layer.kernel_hw
        return layer.filters * in_shape[0] * kh * kw + layer.filters
    if layer.type == "batch_norm":
        return 2 * in_shape[0]
    return 0


def layer_flops(layer: LayerSpec, in_shape: Shape, out_shape: Shape) -> int:
    """Forward FLOPs for one sample."""
    out = math.prod(out_shape)
    activation = getattr(layer, "activation", None)
    act = out * _ACTIVATION_FLOPS.get(activation.type, 1) if activation is not None else 0
    if isinstance(layer, DenseSpec):
        return 2 * in_shape[0] * layer.units + out + act
    if isinstance(layer, Conv2DSpec):
        kh, kw = layer.kernel_hw
        return 2 * in_shape[0] * kh * kw * out + out + act
    if layer.type in ("max_pool2d", "avg_pool2d"):
        k = int(getattr(layer, "pool_size"))  # noqa: B009 - LayerSpec union
        return k * k * out
    if layer.type == "batch_norm":
        return 4 * out + act
    if layer.type == "dropout":
        return out
    return act


def optimizer_state_arrays(spec: OptimizerSpec) -> int:
    """How many parameter-sized arrays the optimizer keeps (torch's state)."""
    if spec.type in ("adam", "adamw"):
        return 3 if spec.amsgrad else 2
    if spec.type == "sgd":
        return 1 if (spec.momentum or 0.0) > 0 else 0
    if spec.type == "rmsprop":
        return 1 + int(bool(spec.centered)) + int((spec.momentum or 0.0) > 0)
    return 1  # adagrad's sum


def split_sizes(n_samples: int, validation_split: float) -> tuple[int, int]:
    """(train rows, validation rows), the same rounding as core.batching.split_indices."""
    n_val = 0
    if validation_split > 0.0 and n_samples > 1:
        n_val = min(max(1, round(n_samples * validation_split)), n_samples - 1)
    return n_samples - n_val, n_val


def dry_run(spec: Spec, input_shape: Sequence[int], n_samples: int) -> dict[str, Any]:
    """Per-layer shapes, parameters and FLOPs; totals for an epoch and a memory estimate.

    Parameters
    ----------
    spec : a validated Spec
    input_shape : one sample's shape, (F,), (H, W) or (C, H, W)
    n_samples : rows in the dataset (before the validation split)

    Returns
    -------
    dict with ``layers`` ([{index, type, output_shape, params, flops}], flops per sample,
    forward), ``total_params``, ``flops_per_epoch``, ``memory_bytes`` (parameters, gradients,
    optimizer state and one batch's activations and their gradients, in the run's dtype),
    ``data_bytes`` (the training arrays), ``batch_size`` (resolved) and ``n_train``/``n_val``.

    Raises
    ------
    SpecError naming the layer that cannot take its input.
    """
    shape = normalize_input_shape(input_shape)
    shapes = infer_shapes(spec.model, shape)
    itemsize = np.dtype(spec.training.dtype).itemsize
    layers: list[dict[str, Any]] = []
    in_shape = shape
    activations = math.prod(shape)
    scratch = 0
    for i, (layer, out_shape) in enumerate(zip(spec.model.layers, shapes, strict=True)):
        layers.append({"index": i, "type": layer.type, "output_shape": list(out_shape),
                       "params": layer_params(layer, in_shape),
                       "flops": layer_flops(layer, in_shape, out_shape)})
        activations += math.prod(out_shape)
        if isinstance(layer, Conv2DSpec):
            kh, kw = layer.kernel_hw
            # im2col columns (C*kh*kw, oh*ow) per sample, the conv's largest scratch
            scratch = max(scratch, in_shape[0] * kh * kw * out_shape[1] * out_shape[2])
        in_shape = out_shape
    total_params = sum(layer["params"] for layer in layers)
    forward = sum(layer["flops"] for layer in layers)
    n_train, n_val = split_sizes(int(n_samples), spec.training.validation_split)
    batch = spec.training.batch_size
    batch_rows = n_train if batch == "full" else min(int(batch), max(n_train, 1))
    state = optimizer_state_arrays(spec.optimizer)
    # params + grads + optimizer state; forward outputs and their gradients for one batch
    memory = (2 + state) * total_params + batch_rows * (2 * activations + 2 * scratch)
    return {
        "layers": layers,
        "total_params": int(total_params),
        "flops_per_epoch": int(BACKWARD_FACTOR * forward * n_train + forward * n_val),
        "memory_bytes": int(memory * itemsize),
        "data_bytes": int(n_samples * math.prod(shape) * itemsize),
        "batch_size": int(batch_rows),
        "n_train": n_train,
        "n_val": n_val,
    }
