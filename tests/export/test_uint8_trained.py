"""A model trained on uint8 images: its weights.npz keeps the standardization as float
statistics, and predict and the ONNX export take the images as any float model's inputs."""

from __future__ import annotations

import io

import numpy as np

from core.checkpoint import load_checkpoint
from core.datasets import load_builtin
from core.training import train
from tests.export.helpers import assert_exports_predict


def test_a_uint8_trained_model_predicts_and_exports_like_its_float32_twin() -> None:
    digits = load_builtin("digits_images")
    X = (digits.X * 15).round().astype(np.uint8)[:400]  # 0..16 -> 0..240 pixel values
    y = digits.y[:400]
    spec = {"model": {"layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "flatten"}, {"type": "dense", "units": 10}]},
        "training": {"epochs": 2, "batch_size": 32, "seed": 1}}
    narrow, wide = train(spec, X, y), train(spec, X.astype(np.float32), y)
    weights = narrow.weights_npz()
    assert weights == wide.weights_npz()
    with np.load(io.BytesIO(weights)) as npz:
        assert npz["__input_mean__"].dtype == np.float32
        assert npz["__input_std__"].shape == (1, 8, 8)
    net = load_checkpoint(weights, loss="cross_entropy")
    probs = net.predict(X[:50])
    assert probs.tobytes() == net.predict(X[:50].astype(np.float32)).tobytes()
    assert float((probs.argmax(axis=1) == y[:50]).mean()) > 0.5
    assert_exports_predict(net, scale=100.0)
