"""Every layer type of core.layers, exported to ONNX, answers what predict answers.

Each case runs in onnxruntime at batch sizes 1, 7 and 64 against ``Network.predict``
(tests/export/helpers.py). The shapes are small and odd on purpose: asymmetric "same"
padding, rectangular kernels, strides and pools that do not tile the input.
"""

from __future__ import annotations

from typing import Any

import onnx
import pytest

from core.layers import LAYERS
from export.onnx.layers import LAYER_EXPORTERS
from tests.export.helpers import assert_exports_predict, network


def conv(**fields: Any) -> dict[str, Any]:
    return {"type": "conv2d", "filters": 3, "kernel_size": 3, **fields}


def dense(units: int, **fields: Any) -> dict[str, Any]:
    return {"type": "dense", "units": units, **fields}


FLAT = {"type": "flatten"}

# id -> (layers, input shape, loss)
CASES: dict[str, tuple[list[dict[str, Any]], tuple[int, ...], str]] = {
    "dense": ([dense(6, activation="relu"), dense(3)], (5,), "cross_entropy"),
    "conv2d-valid": ([conv(), FLAT, dense(2)], (2, 7, 7), "mse"),
    "conv2d-same-even-kernel": ([conv(kernel_size=2, padding="same"), FLAT, dense(2)],
                                (2, 6, 5), "mse"),
    "conv2d-rect-kernel-int-padding-stride-2": (
        [conv(kernel_size=[3, 2], padding=1, stride=2, activation="relu"), FLAT, dense(4)],
        (3, 9, 8), "cross_entropy"),
    "max_pool2d": ([conv(padding="same"), {"type": "max_pool2d"}, FLAT, dense(3)],
                   (1, 8, 8), "cross_entropy"),
    "max_pool2d-overlapping": ([conv(), {"type": "max_pool2d", "pool_size": 3, "stride": 1},
                                FLAT, dense(3)], (2, 9, 7), "mse"),
    "avg_pool2d": ([conv(), {"type": "avg_pool2d"}, FLAT, dense(3)], (2, 8, 8), "mse"),
    "avg_pool2d-ragged": ([{"type": "avg_pool2d", "pool_size": 3, "stride": 2}, FLAT,
                           dense(3)], (2, 8, 9), "mse"),
    "flatten-images": ([FLAT, dense(3)], (2, 4, 3), "cross_entropy"),
    "flatten-features": ([FLAT, dense(3)], (6,), "mse"),
    "dropout": ([dense(8, activation="relu"), {"type": "dropout", "rate": 0.5}, dense(3)],
                (5,), "cross_entropy"),
    "batch_norm-features": ([dense(6), {"type": "batch_norm", "activation": "relu"},
                             dense(3)], (5,), "cross_entropy"),
    "batch_norm-channels": ([conv(), {"type": "batch_norm", "eps": 1e-3}, FLAT, dense(3)],
                            (2, 6, 6), "mse"),
    "layer_norm-features": ([dense(6), {"type": "layer_norm"}, dense(3)], (5,),
                            "cross_entropy"),
    "layer_norm-images": ([conv(), {"type": "layer_norm", "eps": 1e-3}, FLAT, dense(3)],
                          (2, 6, 6), "mse"),
    "layer_norm-without-affine": ([dense(6), {"type": "layer_norm",
                                              "elementwise_affine": False}, dense(3)], (5,),
                                  "mse"),
    "activation": ([dense(6), {"type": "activation", "activation": "tanh"}, dense(3)],
                   (5,), "binary_cross_entropy"),
    "images-without-channel": ([conv(), FLAT, dense(3)], (8, 8), "cross_entropy"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_exports_as_predict_answers(case: str) -> None:
    layers, input_shape, loss = CASES[case]
    assert_exports_predict(network(layers, input_shape, loss=loss))


def test_every_layer_type_has_an_exporter_and_a_case() -> None:
    assert set(LAYER_EXPORTERS) == set(LAYERS)
    covered = {layer["type"] for layers, _, _ in CASES.values() for layer in layers}
    assert covered == set(LAYERS)


def ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


def test_layers_map_to_their_operators() -> None:
    model = assert_exports_predict(network(
        [conv(padding="same"), {"type": "batch_norm"}, {"type": "max_pool2d"},
         {"type": "avg_pool2d", "pool_size": 1}, FLAT, {"type": "dropout"}, dense(4),
         {"type": "activation", "activation": "relu"}], (1, 4, 4), standardize=False))
    # Dropout writes nothing; the Identity names the graph's output.
    assert ops(model) == ["Conv", "BatchNormalization", "MaxPool", "AveragePool", "Flatten",
                          "Gemm", "Relu", "Identity"]


def test_conv_pads_are_top_left_then_bottom_right() -> None:
    # torch's "same" for an even kernel pads the extra row/column after: ONNX's order is
    # [top, left, bottom, right].
    model = assert_exports_predict(network([conv(kernel_size=[2, 4], padding="same"), FLAT,
                                            dense(2)], (1, 5, 6)))
    (node,) = [n for n in model.graph.node if n.op_type == "Conv"]
    pads = next(a for a in node.attribute if a.name == "pads")
    assert list(pads.ints) == [0, 1, 1, 2]


def test_batch_norm_keeps_running_statistics_and_eps() -> None:
    net = network([dense(4), {"type": "batch_norm", "eps": 0.01}, dense(2)], (3,))
    model = assert_exports_predict(net)
    (node,) = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert next(a.f for a in node.attribute if a.name == "epsilon") == pytest.approx(0.01)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert (stored["layers.1.running_var"] == net.buffers["1.running_var"]).all()
    assert (stored["layers.1.running_mean"] == net.buffers["1.running_mean"]).all()


@pytest.mark.parametrize("opset", [13, 16, 17, 21])
@pytest.mark.parametrize("input_shape", [(6,), (2, 3, 4)])
def test_layer_norm_is_layer_normalization_from_opset_17(opset: int,
                                                         input_shape: tuple[int, ...]) -> None:
    net = network([{"type": "layer_norm"}, FLAT, dense(3)], input_shape, loss="cross_entropy")
    model = assert_exports_predict(net, opset=opset)
    operators = ops(model)
    assert ("LayerNormalization" in operators) == (opset >= 17)
    assert ("ReduceMean" in operators) == (opset < 17)
