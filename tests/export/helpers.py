"""Run an exported model in onnxruntime and hold it to the network's own predict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from core.network import Network, build_network
from core.preprocessing import Preprocessing
from export.onnx.model import INPUT_NAME, onnx_model
from export.onnx.opsets import DEFAULT_OPSET

BATCH_SIZES = (1, 7, 64)
RTOL, ATOL = 1e-5, 1e-6


def run_onnx(model: bytes | onnx.ModelProto, X: np.ndarray) -> np.ndarray:
    """The model's output for X, by onnxruntime's CPU provider."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {INPUT_NAME: np.asarray(X, dtype=np.float32)})[0]
    return out


def network(layers: list[dict[str, Any]], input_shape: Sequence[int], *, loss: str = "mse",
            seed: int = 0, dtype: str = "float32", standardize: bool = True) -> Network:
    """A built network whose every parameter, buffer and statistic is drawn at random.

    Random running statistics and batch_norm gamma/beta (instead of torch's 1/0 and 0/1) make
    the inference form of batch_norm matter; a random standardization makes its nodes matter.
    """
    net = build_network({"layers": layers}, input_shape, seed=seed, dtype=dtype, loss=loss)
    rng = np.random.default_rng(seed + 1)
    for name, value in {**net.params, **net.buffers}.items():
        if name.endswith(("running_var", "gamma")):
            value[...] = rng.uniform(0.5, 2.0, value.shape)
        elif name.endswith(("running_mean", "beta")):
            value[...] = rng.normal(size=value.shape)
    if standardize:
        shape = net.input_shape
        net.preprocessing = Preprocessing(rng.normal(size=shape).astype(dtype),
                                          rng.uniform(0.5, 3.0, shape).astype(dtype))
    return net


def assert_exports_predict(net: Network, *, opset: int = DEFAULT_OPSET, scale: float = 2.0,
                           seed: int = 0) -> onnx.ModelProto:
    """The export passes onnx's full check and equals ``net.predict`` at batch 1, 7 and 64
    (rtol 1e-5, atol 1e-6, and for a classifier the same argmax); returns the model."""
    model = onnx_model(net, opset)
    onnx.checker.check_model(model, full_check=True)
    rng = np.random.default_rng(seed)
    for n in BATCH_SIZES:
        X = (rng.normal(size=(n, *net.input_shape)) * scale).astype(np.float32)
        got = run_onnx(model, X)
        want = net.predict(X)
        assert got.shape == want.shape == (n, *net.output_shape)
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"batch {n}")
        if net.loss_link != "identity":  # raw outputs may tie (a saturated tanh, ...)
            np.testing.assert_array_equal(got.reshape(n, -1).argmax(axis=1),
                                          want.reshape(n, -1).argmax(axis=1))
    return model
