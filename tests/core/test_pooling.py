"""Max and average pooling: values against direct loops, first-maximum routing, gradients."""

from __future__ import annotations

import numpy as np
import pytest

from core.layers import AvgPool2D, MaxPool2D
from tests.core.gradcheck import assert_golden, check_layer, load_golden

CASES = [(2, None, (2, 6, 6)), (2, None, (1, 7, 5)), (3, 2, (2, 7, 7)), (3, 1, (1, 5, 6)),
         (2, 3, (2, 8, 8))]


def _direct(x: np.ndarray, k: int, s: int, reduce) -> np.ndarray:  # type: ignore[no-untyped-def]
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    out = np.zeros((*x.shape[:2], oh, ow))
    for a in range(oh):
        for c in range(ow):
            out[:, :, a, c] = reduce(x[:, :, a * s:a * s + k, c * s:c * s + k], axis=(2, 3))
    return out


@pytest.mark.parametrize(("cls", "reduce"), [(MaxPool2D, np.max), (AvgPool2D, np.mean)])
@pytest.mark.parametrize(("k", "stride", "shape"), CASES)
def test_forward_and_gradients(cls, reduce, k, stride, shape) -> None:  # type: ignore[no-untyped-def]
    layer = cls(k, stride)
    out_shape = layer.build(shape, np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((2, *shape))
    want = _direct(x, k, stride or k, reduce)
    assert out_shape == want.shape[1:]
    np.testing.assert_allclose(layer.forward(x, training=True), want, rtol=1e-14)
    assert check_layer(layer, x)["input"] <= 1e-7


def test_max_pool_gradient_goes_to_the_first_maximum_only() -> None:
    layer = MaxPool2D(2)
    layer.build((1, 2, 4), np.random.default_rng(0), np.float64)
    x = np.array([[[[1.0, 5.0, 7.0, 7.0],
                    [5.0, 2.0, 7.0, 7.0]]]])
    np.testing.assert_array_equal(layer.forward(x, training=True), [[[[5.0, 7.0]]]])
    dx = layer.backward(np.array([[[[10.0, 20.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 10.0, 20.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0]]]])


@pytest.mark.parametrize(("k", "stride", "shape"), [(2, None, (3, 6, 8)), (2, None, (2, 7, 5)),
                                                  (3, None, (2, 7, 6)), (2, 3, (2, 8, 8))])
def test_max_pool_routes_ties_to_the_first_maximum_of_each_window(k, stride, shape) -> None:  # type: ignore[no-untyped-def]
    # Small integers make most windows tie; torch keeps the first maximum in row-major
    # order, written here as a direct loop (the 2x2 path and the general one alike).
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, (2, *shape)).astype(np.float32)
    dy = rng.standard_normal((2, shape[0], *MaxPool2D(k, stride).build(
        shape, rng, np.float32)[1:])).astype(np.float32)
    layer = MaxPool2D(k, stride)
    layer.build(shape, rng, np.float32)
    layer.forward(x, training=True)
    s = stride or k
    want = np.zeros_like(x)
    for n, c, a, b in np.ndindex(dy.shape):
        win = x[n, c, a * s:a * s + k, b * s:b * s + k]
        i, j = np.unravel_index(np.argmax(win), win.shape)  # argmax: the first maximum
        want[n, c, a * s + i, b * s + j] += dy[n, c, a, b]
    np.testing.assert_array_equal(layer.backward(dy), want)


def test_overlapping_max_pool_accumulates_shared_maxima() -> None:
    layer = MaxPool2D(2, 1)
    layer.build((1, 2, 3), np.random.default_rng(0), np.float64)
    x = np.array([[[[0.0, 9.0, 1.0], [2.0, 3.0, 4.0]]]])
    np.testing.assert_array_equal(layer.forward(x, training=True), [[[[9.0, 9.0]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[1.0, 2.0]]]])),
                                  [[[[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]]])


def test_float32_stays_float32() -> None:
    for cls in (MaxPool2D, AvgPool2D):
        layer = cls(2)
        layer.build((3, 4, 4), np.random.default_rng(0), np.float32)
        y = layer.forward(np.ones((2, 3, 4, 4), dtype=np.float32), training=True)
        dx = layer.backward(np.ones_like(y))
        assert y.dtype == dx.dtype == np.float32


def test_pool_larger_than_input_is_a_spec_error() -> None:
    from core.errors import SpecError

    with pytest.raises(SpecError, match="pool_size"):
        MaxPool2D(2, 1).build((1, 1, 3), np.random.default_rng(0), np.float64)


@pytest.mark.parametrize("case", load_golden("layers_pool.json"),
                         ids=lambda c: f"{c['type']}-k{c['pool_size']}-s{c['stride']}")
def test_matches_torch_golden(case: dict) -> None:  # type: ignore[type-arg]
    x = np.array(case["x"])
    cls = MaxPool2D if case["type"] == "max_pool2d" else AvgPool2D
    layer = cls(case["pool_size"], case["stride"])
    layer.build(x.shape[1:], np.random.default_rng(0), np.float64)
    assert_golden(layer.forward(x, training=True), case["y"])
    assert_golden(layer.backward(np.array(case["dy"])), case["dx"])
