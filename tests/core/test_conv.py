"""Conv2D: forward against a direct loop, float64 gradient checks for every padding mode."""

from __future__ import annotations

import numpy as np
import pytest

from core._windows import conv_padding
from core.activations import ACTIVATIONS
from core.layers import Conv2D
from tests.core.gradcheck import assert_golden, check_layer, load_golden


def _direct_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                 pads: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    o, _, kh, kw = w.shape
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for a in range(oh):
        for c in range(ow):
            patch = xp[:, :, a * stride:a * stride + kh, c * stride:c * stride + kw]
            out[:, :, a, c] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


CASES = [  # (kernel, stride, padding, input (C, H, W))
    (3, 1, "valid", (2, 6, 7)),
    (3, 1, "same", (2, 5, 6)),
    (4, 1, "same", (1, 6, 5)),
    ((2, 3), 1, "same", (2, 5, 5)),
    (3, 2, 1, (2, 7, 6)),
    (3, 2, "valid", (3, 7, 8)),
    (2, 2, 0, (2, 6, 6)),
    (1, 1, "valid", (3, 4, 4)),
]


@pytest.mark.parametrize(("kernel", "stride", "padding", "shape"), CASES)
def test_forward_matches_direct_convolution(kernel, stride, padding, shape) -> None:  # type: ignore[no-untyped-def]
    layer = Conv2D(4, kernel, stride, padding)
    out_shape = layer.build(shape, np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((3, *shape))
    want = _direct_conv(x, layer.params["weight"], layer.params["bias"], stride, layer.pads)
    assert out_shape == want.shape[1:]
    np.testing.assert_allclose(layer.forward(x, training=True), want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize(("kernel", "stride", "padding", "shape"), CASES)
def test_gradients_match_central_differences(kernel, stride, padding, shape) -> None:  # type: ignore[no-untyped-def]
    layer = Conv2D(3, kernel, stride, padding, ACTIVATIONS["tanh"]())
    layer.build(shape, np.random.default_rng(2), np.float64)
    x = np.random.default_rng(3).standard_normal((2, *shape))
    errors = check_layer(layer, x)
    assert max(errors.values()) <= 1e-7, errors


def test_same_padding_is_torch_asymmetric_rule() -> None:
    assert conv_padding("same", 4, 3, 1) == (1, 2, 1, 1)
    assert conv_padding("same", 5, 2, 1) == (2, 2, 0, 1)
    assert conv_padding(2, 3, 3, 2) == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="stride 1"):
        conv_padding("same", 3, 3, 2)


def test_bad_geometry_is_a_spec_error() -> None:
    from core.errors import SpecError

    with pytest.raises(SpecError, match="padding"):
        Conv2D(2, 3, 2, "same").build((1, 8, 8), np.random.default_rng(0), np.float32)
    with pytest.raises(SpecError, match="kernel_size"):
        Conv2D(2, 5).build((1, 3, 3), np.random.default_rng(0), np.float32)


def test_float32_stays_float32_and_first_layer_skips_dx() -> None:
    layer = Conv2D(4, 3, 1, "same", ACTIVATIONS["relu"]())
    layer.build((1, 8, 8), np.random.default_rng(0), np.float32)
    layer.needs_input_grad = False
    y = layer.forward(np.ones((2, 1, 8, 8), dtype=np.float32), training=True)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)) is None
    assert layer.grads["weight"].dtype == np.float32


@pytest.mark.parametrize("case", load_golden("layers_conv.json"),
                         ids=lambda c: f"k{c['kernel']}-s{c['stride']}-p{c['padding']}")
def test_matches_torch_golden(case: dict) -> None:  # type: ignore[type-arg]
    x, w = np.array(case["x"]), np.array(case["weight"])
    layer = Conv2D(w.shape[0], case["kernel"], case["stride"], case["padding"])
    layer.build(x.shape[1:], np.random.default_rng(0), np.float64)
    layer.params["weight"][...] = w
    layer.params["bias"][...] = case["bias"]
    assert_golden(layer.forward(x, training=True), case["y"])
    assert_golden(layer.backward(np.array(case["dy"])), case["dx"])
    assert_golden(layer.grads["weight"], case["dweight"])
    assert_golden(layer.grads["bias"], case["dbias"])


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_fused_activation_through_the_channel_major_path(activation: str) -> None:
    layer = Conv2D(3, 3, 1, "same", ACTIVATIONS[activation]())
    layer.build((2, 5, 4), np.random.default_rng(4), np.float64)
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 4))
    errors = check_layer(layer, x)
    assert max(errors.values()) <= 1e-7, errors


def _gradients(layer: Conv2D, x: np.ndarray, dy: np.ndarray) -> list[bytes]:
    layer.forward(x, training=True)
    dx = layer.backward(dy.copy())
    assert dx is not None
    return [dx.tobytes(), layer.grads["weight"].tobytes(), layer.grads["bias"].tobytes()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("kernel", "padding", "shape"),
                         [(3, 1, (3, 6, 5)), (3, "same", (2, 4, 4)), ((2, 3), "valid", (2, 5, 7))])
def test_input_gradient_folded_back_a_few_images_at_a_time_is_the_whole_batchs_bits(
        monkeypatch: pytest.MonkeyPatch, dtype: type, kernel: int, padding: object,
        shape: tuple[int, int, int]) -> None:
    """col2im runs over chunks of images (about 1 MiB of columns); a small batch is one chunk.

    Forcing chunks of one and of two images must not change a bit: each element of an image
    still gets its kernel offsets' terms in the same order, whatever else a call covers.
    """
    import core.layers.conv as conv

    layer = Conv2D(4, kernel, 1, padding, ACTIVATIONS["relu"]())  # type: ignore[arg-type]
    layer.build(shape, np.random.default_rng(6), dtype)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, *shape)).astype(dtype)
    dy = rng.standard_normal((7, *layer.output_shape)).astype(dtype)
    whole = _gradients(layer, x, dy)
    k = shape[0] * layer.kh * layer.kw
    per_image = k * layer.oh * (shape[2] + layer.pads[2] + layer.pads[3]) * x.itemsize
    for images in (1, 2):
        monkeypatch.setattr(conv, "_CHUNK_BYTES", images * per_image)
        assert _gradients(layer, x, dy) == whole, images
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 1)  # a chunk is never less than one image
    assert _gradients(layer, x, dy) == whole
    if dtype is np.float64:
        layer = Conv2D(3, kernel, 1, padding, ACTIVATIONS["tanh"]())  # type: ignore[arg-type]
        layer.build(shape, np.random.default_rng(2), dtype)
        errors = check_layer(layer, x[:3])
        assert max(errors.values()) <= 1e-7, errors
