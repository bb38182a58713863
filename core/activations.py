"""Element-wise activations with PyTorch's numerics, in the dtype of their input.

Each activation is a small object that caches what its backward needs. ``forward(x, out)``
and ``backward(dy, out)`` accept ``out`` so a layer that owns its buffers can run them in
place (``out=x`` / ``out=dy``): the hot path of a fused dense layer then allocates nothing.
Constants are Python floats, which NumPy 2 treats as weak scalars, so float32 stays float32.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from core._erf import erf, erfc
from core.errors import SpecError
from core.spec.params import Param, defaults

Array = NDArray[Any]

__all__ = ["ACTIVATIONS", "Activation", "erf", "erfc", "make_activation", "softmax",
           "stable_sigmoid"]

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _into(result: Array, out: Array | None) -> Array:
    if out is None:
        return result
    np.copyto(out, result)
    return out


def _memory_order(x: Array) -> tuple[int, ...]:
    """x's axes from the largest stride to the smallest (ties: in axis order)."""
    if x.flags.c_contiguous:
        return tuple(range(x.ndim))
    return tuple(sorted(range(x.ndim), key=lambda a: -abs(x.strides[a])))


class Activation:
    """Base class and the identity (``linear``); subclasses override forward/backward.

    Registry metadata, read by the spec parser, the JSON Schema, the docs and the dry run:
    ``spec_params`` are the function's JSON fields beside ``type``; ``flops_per_value`` its
    forward cost per output value (exp/erf count a few FLOPs); ``work_arrays`` how many
    arrays of the output's size and dtype it holds or allocates at its peak beyond the
    output itself (a cache for backward, temporaries; float64 temporaries of a float32 run
    count twice), for the memory estimate -- measured with tracemalloc in
    tests/core/test_dryrun.py.
    """

    name: ClassVar[str] = "linear"
    spec_params: ClassVar[tuple[Param, ...]] = ()
    flops_per_value: ClassVar[int] = 0
    work_arrays: ClassVar[int] = 0
    # Outputs exactly 0 over a half-line, so a unit can "die" (core.diagnostics counts the
    # units of such an activation that were zero for a whole batch: it keeps ``output``).
    zero_region: ClassVar[bool] = False

    def forward(self, x: Array, out: Array | None = None) -> Array:
        """Apply the activation; ``out`` may be ``x`` itself for in-place use. Shape kept."""
        if out is None:
            return x.copy()
        if out is not x:
            np.copyto(out, x)
        return out

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        """Gradient w.r.t. the last forward's input; ``out`` may be ``dy`` (in place)."""
        if out is None:
            return dy.copy()
        if out is not dy:
            np.copyto(out, dy)
        return out

    def _keep_input(self, x: Array, out: Array | None) -> Array:
        # A forward that overwrites its input must keep a copy for backward.
        return x.copy() if out is x else x


class Linear(Activation):
    """The identity: ``y = x``."""

    name = "linear"


class ReLU(Activation):
    """``max(x, 0)``; the gradient at 0 is 0, as torch."""

    name = "relu"
    flops_per_value = 1
    work_arrays = 2  # backward's mask, and the zeros forward compares against
    zero_region = True

    def __init__(self) -> None:
        self._zeros: Array | None = None
        self._zeros_key: tuple[Any, ...] = ()

    @property
    def output(self) -> Array | None:
        """The last forward's output (valid until the layer's next forward), or None."""
        return getattr(self, "_y", None)

    def forward(self, x: Array, out: Array | None = None) -> Array:
        # NumPy's maximum against an array runs its SIMD loop, against the scalar 0.0 a
        # loop about 4x slower; the values are the same (NaN and -0.0 included). The zeros
        # come from calloc and are never written, so they are mostly address space; the
        # estimate counts them all the same, as it counts every allocation.
        # They are laid out as x is (a conv's channel-major output, say): a ufunc whose
        # operands disagree on the order of two axes walks them in C order, across x's rows.
        key = (x.shape, x.dtype, _memory_order(x))
        if self._zeros is None or self._zeros_key != key:
            order = key[2]
            zeros = np.zeros([x.shape[a] for a in order], x.dtype)
            self._zeros, self._zeros_key = zeros.transpose(np.argsort(order)), key
        self._y = np.maximum(x, self._zeros, out=out)
        return self._y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        # torch: gradient flows where the output is positive (0 at x == 0).
        return np.multiply(dy, self._y > 0.0, out=out)


class LeakyReLU(Activation):
    """``x`` for x > 0, else ``alpha * x`` (torch.nn.LeakyReLU)."""

    name = "leaky_relu"
    spec_params = (Param("alpha", "number", 0.01,
                         doc="The slope for negative inputs (torch's negative_slope)."),)
    flops_per_value = 2
    work_arrays = 4  # its mask, the slope and the slope's float64 draft

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = float(defaults(self.spec_params)["alpha"] if alpha is None else alpha)

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._pos = x > 0.0
        slope = np.where(self._pos, 1.0, self.alpha).astype(x.dtype)
        result: Array = np.multiply(x, slope, out=out)
        return result

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        scale = np.where(self._pos, 1.0, self.alpha).astype(dy.dtype)
        result: Array = np.multiply(dy, scale, out=out)
        return result


class ELU(Activation):
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)`` (torch.nn.ELU)."""

    name = "elu"
    spec_params = (Param("alpha", "number", 1.0,
                         doc="The scale of the negative part."),)
    flops_per_value = 3
    work_arrays = 3

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = float(defaults(self.spec_params)["alpha"] if alpha is None else alpha)

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._x = self._keep_input(x, out)
        neg = self.alpha * np.expm1(np.minimum(self._x, 0.0))
        return _into(np.where(self._x > 0.0, self._x, neg), out)

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        slope = np.where(self._x > 0.0, 1.0, self.alpha * np.exp(np.minimum(self._x, 0.0)))
        result: Array = np.multiply(dy, slope.astype(dy.dtype, copy=False), out=out)
        return result


class GELU(Activation):
    """Exact GELU, ``x * Phi(x)``, with Phi from the vectorised Cody erf (torch's "none")."""

    name = "gelu"
    flops_per_value = 8
    work_arrays = 44  # Cody's erfc works in float64 temporaries: ~21 float64 arrays

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._x = self._keep_input(x, out)
        # Phi(x) via erfc keeps full relative accuracy in the negative tail.
        self._cdf = 0.5 * erfc(self._x * -_INV_SQRT_2)
        return np.multiply(self._x, self._cdf, out=out)

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * self._x * self._x)
        return np.multiply(dy, self._cdf + self._x * pdf, out=out)


def stable_sigmoid(x: Array, out: Array | None = None) -> Array:
    """1 / (1 + exp(-x)) without overflow for either sign. Shape and dtype of ``x``."""
    e = np.exp(-np.abs(x))
    num = np.where(x >= 0.0, 1.0, e).astype(x.dtype, copy=False)
    e += 1.0
    result: Array = np.divide(num, e, out=out)
    return result


class Sigmoid(Activation):
    """The logistic function ``1 / (1 + exp(-x))``, stable for either sign."""

    name = "sigmoid"
    flops_per_value = 4
    work_arrays = 3  # |x|, exp(-|x|), the numerator

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._y = stable_sigmoid(x, out=out)
        return self._y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        return np.multiply(dy, self._y * (1.0 - self._y), out=out)


class Tanh(Activation):
    """The hyperbolic tangent."""

    name = "tanh"
    flops_per_value = 4
    work_arrays = 2

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._y = np.tanh(x, out=out)
        return self._y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        return np.multiply(dy, 1.0 - self._y * self._y, out=out)


def softmax(x: Array, axis: int = 1) -> Array:
    """Numerically stable softmax along ``axis`` (features / channels). Shape of ``x``."""
    z: Array = x - x.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


class Softmax(Activation):
    """Softmax along axis 1: the features of (N, F), the channels of (N, C, H, W)."""

    name = "softmax"
    flops_per_value = 5
    work_arrays = 2

    def forward(self, x: Array, out: Array | None = None) -> Array:
        y = softmax(x, axis=1)
        if out is not None:
            np.copyto(out, y)
            y = out
        self._y = y
        return y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        inner = np.sum(dy * self._y, axis=1, keepdims=True)
        result: Array = np.multiply(self._y, dy - inner, out=out)
        return result


class Softplus(Activation):
    """``log(1 + exp(x))``, torch.nn.Softplus(beta=1, threshold=20): linear above 20."""

    name = "softplus"
    flops_per_value = 4
    work_arrays = 4
    threshold: ClassVar[float] = 20.0

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._x = self._keep_input(x, out)
        soft = np.log1p(np.exp(np.minimum(self._x, self.threshold)))
        return _into(np.where(self._x > self.threshold, self._x, soft), out)

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        slope = np.where(self._x > self.threshold, 1.0, stable_sigmoid(self._x))
        result: Array = np.multiply(dy, slope.astype(dy.dtype, copy=False), out=out)
        return result


class SiLU(Activation):
    """``x * sigmoid(x)`` (also called swish)."""

    name = "silu"
    flops_per_value = 5
    work_arrays = 5  # its input, sigmoid(x) and the sigmoid's temporaries

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._x = self._keep_input(x, out)
        self._s = stable_sigmoid(self._x)
        return np.multiply(self._x, self._s, out=out)

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        s = self._s
        return np.multiply(dy, s * (1.0 + self._x * (1.0 - s)), out=out)


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls
    for cls in (Linear, ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softmax, Softplus, SiLU)
}


def make_activation(spec: Any) -> Activation:
    """Build an activation from a name, ``None`` (linear), a mapping or a spec object.

    A mapping / object names the activation in ``type`` (or ``name``) and may carry the
    parameters its class declares in ``spec_params`` (others are ignored). An unknown name
    raises ``SpecError``.
    """
    if isinstance(spec, Activation):
        return spec
    if spec is None:
        return Linear()
    get = (spec.get if isinstance(spec, dict)
           else (lambda k, d=None: d) if isinstance(spec, str)
           else (lambda k, d=None: getattr(spec, k, d)))
    name = spec if isinstance(spec, str) else str(get("type") or get("name"))
    if name not in ACTIVATIONS:
        raise SpecError("activation", f"unknown activation {name!r}; expected one of "
                        f"{sorted(ACTIVATIONS)}")
    cls = ACTIVATIONS[name]
    given = {p.name: get(p.name) for p in cls.spec_params}
    return cls(**{key: float(value) for key, value in given.items() if value is not None})
