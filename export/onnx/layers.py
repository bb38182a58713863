"""Each layer type of ``core.layers`` as ONNX operators: layer type -> exporter.

An exporter takes the graph, the built layer of the loaded network (its hyperparameters as
core resolved them, e.g. a conv's ``pads``, and its weights) and the name of its input value,
and returns the name of its output. Reading the built layers rather than the spec's JSON keeps
one owner for each rule: "same" padding, the default pool stride, and the final softmax that
core fuses into cross-entropy's link are all decided by core once. Inference form throughout:
dropout is the identity, batch_norm uses its running statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.layers import (
    ActivationLayer,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LayerNorm,
    MaxPool2D,
)
from export.onnx.activations import export_activation
from export.onnx.graph import Graph

LayerExporter = Callable[[Graph, Any, str], str]


def _dense(graph: Graph, layer: Dense, x: str) -> str:
    """x @ W + b with W stored (fan_in, fan_out): Gemm without a transpose."""
    weight = graph.constant("weight", layer.params["weight"])
    bias = graph.constant("bias", layer.params["bias"])
    return export_activation(graph, layer.activation, graph.op("Gemm", x, weight, bias))


def _conv2d(graph: Graph, layer: Conv2D, x: str) -> str:
    """Cross-correlation with torch's kernel layout (out, in, kh, kw), as ONNX's Conv."""
    top, bottom, left, right = layer.pads
    y = graph.op("Conv", x, graph.constant("weight", layer.params["weight"]),
                 graph.constant("bias", layer.params["bias"]),
                 kernel_shape=[layer.kh, layer.kw], strides=[layer.stride, layer.stride],
                 pads=[top, left, bottom, right])
    return export_activation(graph, layer.activation, y)


def _max_pool2d(graph: Graph, layer: MaxPool2D, x: str) -> str:
    return graph.op("MaxPool", x, kernel_shape=[layer.k, layer.k],
                    strides=[layer.stride, layer.stride])


def _avg_pool2d(graph: Graph, layer: AvgPool2D, x: str) -> str:
    # No padding (core has none), so every window divides by k*k as torch's does.
    return graph.op("AveragePool", x, kernel_shape=[layer.k, layer.k],
                    strides=[layer.stride, layer.stride])


def _flatten(graph: Graph, layer: Flatten, x: str) -> str:
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order; (N, F) stays (N, F)."""
    return graph.op("Flatten", x, axis=1)


def _dropout(graph: Graph, layer: Dropout, x: str) -> str:
    """The identity at inference: nothing to write."""
    return x


def _batch_norm(graph: Graph, layer: BatchNorm, x: str) -> str:
    """Inference BatchNormalization with the running statistics, on (N, F) or (N, C, H, W)."""
    y = graph.op("BatchNormalization", x,
                 graph.constant("gamma", layer.params["gamma"]),
                 graph.constant("beta", layer.params["beta"]),
                 graph.constant("running_mean", layer.buffers["running_mean"]),
                 graph.constant("running_var", layer.buffers["running_var"]),
                 epsilon=layer.eps)
    return export_activation(graph, layer.activation, y)


def _layer_norm(graph: Graph, layer: LayerNorm, x: str) -> str:
    """torch.nn.LayerNorm over all of a sample's values, (F,) or (C, H, W).

    ``LayerNormalization(axis=1)`` from opset 17, where it exists (gamma of ones when the
    layer has no affine part: the operator requires a scale); below 17, core's arithmetic
    itself: the row mean, then the biased variance of the centred values, then
    1 / sqrt(var + eps). Both equal core to the suite's tolerance in onnxruntime; a row
    whose mean is ~1000 times its spread is ill-conditioned in float32 for core as much as
    here (both forms then differ from core by 1e-4, as two float32 summation orders do).
    """
    shape = layer.input_shape
    affine = layer.elementwise_affine
    gamma = graph.constant("gamma", layer.params["gamma"] if affine else np.ones(shape))
    beta = graph.constant("beta", layer.params["beta"]) if affine else None
    if graph.opset >= 17:
        inputs = [x, gamma] if beta is None else [x, gamma, beta]
        return graph.op("LayerNormalization", *inputs, axis=1, epsilon=layer.eps)
    axes = list(range(1, 1 + len(shape)))
    centred = graph.op("Sub", x, graph.op("ReduceMean", x, axes=axes, keepdims=1))
    var = graph.op("ReduceMean", graph.op("Mul", centred, centred), axes=axes, keepdims=1)
    std = graph.op("Sqrt", graph.op("Add", var, graph.constant("eps", layer.eps)))
    y = graph.op("Mul", centred, graph.op("Reciprocal", std))
    if beta is None:
        return y
    return graph.op("Add", graph.op("Mul", y, gamma), beta)


def _activation(graph: Graph, layer: ActivationLayer, x: str) -> str:
    return export_activation(graph, layer.activation, x)


LAYER_EXPORTERS: dict[str, LayerExporter] = {
    "dense": _dense,
    "conv2d": _conv2d,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "flatten": _flatten,
    "dropout": _dropout,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "activation": _activation,
}
