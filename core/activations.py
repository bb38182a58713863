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

Array = NDArray[Any]

# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969), coefficients as in Netlib SPECFUN CALERF: about 1e-16 relative in float64.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erfc_scaled_tail(y: Array) -> Array:
    """erfc(y) for y > 0.46875 (Cody's second and third intervals), shape of ``y``."""
    mid = y <= 4.0
    ym = np.where(mid, y, 1.0)
    num = _ERF_C[8] * ym
    den = ym.copy()
    for c, d in zip(_ERF_C[:7], _ERF_D[:7], strict=True):
        num = (num + c) * ym
        den = (den + d) * ym
    r_mid = (num + _ERF_C[7]) / (den + _ERF_D[7])
    yt = np.where(mid, 5.0, y)
    z = 1.0 / (yt * yt)
    num = _ERF_P[5] * z
    den = z.copy()
    for p, q in zip(_ERF_P[:4], _ERF_Q[:4], strict=True):
        num = (num + p) * z
        den = (den + q) * z
    r_tail = (_INV_SQRT_PI - z * (num + _ERF_P[4]) / (den + _ERF_Q[4])) / yt
    r = np.where(mid, r_mid, r_tail)
    # exp(-y^2) split as Cody does, so the rounding of y*y does not cost digits.
    ysq = np.trunc(y * 16.0) / 16.0
    delta = (y - ysq) * (y + ysq)
    out: Array = np.exp(-ysq * ysq) * np.exp(-delta) * r
    return out


def _erf_parts(x64: Array) -> tuple[Array, Array, Array]:
    """(|x| <= 0.46875, erf(x) on that interval, erfc(|x|) beyond it), float64."""
    y = np.abs(x64)
    small = y <= 0.46875
    z = np.where(small, y * y, 0.0)
    num = _ERF_A[4] * z
    den = z.copy()
    for a, b in zip(_ERF_A[:3], _ERF_B[:3], strict=True):
        num = (num + a) * z
        den = (den + b) * z
    erf_small = x64 * (num + _ERF_A[3]) / (den + _ERF_B[3])
    tail = _erfc_scaled_tail(np.where(small, 1.0, y))
    return small, erf_small, tail


def erf(x: Array) -> Array:
    """The error function, vectorised NumPy, ~1e-16 relative in float64.

    Parameters
    ----------
    x : ndarray, any shape, float32 or float64

    Returns
    -------
    ndarray, same shape and dtype as ``x``
    """
    x64 = np.asarray(x, dtype=np.float64)
    small, erf_small, tail = _erf_parts(x64)
    result = np.where(small, erf_small, np.copysign(1.0 - tail, x64))
    out: Array = result.astype(np.asarray(x).dtype, copy=False)
    return out


def erfc(x: Array) -> Array:
    """1 - erf(x) without cancellation for large positive x. Shape and dtype of ``x``."""
    x64 = np.asarray(x, dtype=np.float64)
    small, erf_small, tail = _erf_parts(x64)
    result = np.where(small, 1.0 - erf_small, np.where(x64 > 0.0, tail, 2.0 - tail))
    out: Array = result.astype(np.asarray(x).dtype, copy=False)
    return out


def _into(result: Array, out: Array | None) -> Array:
    if out is None:
        return result
    np.copyto(out, result)
    return out


class Activation:
    """Base class: identity. Subclasses override ``_forward`` and ``_backward``."""

    name: ClassVar[str] = "linear"

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
    name = "linear"


class ReLU(Activation):
    name = "relu"

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._y = np.maximum(x, 0.0, out=out)
        return self._y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        # torch: gradient flows where the output is positive (0 at x == 0).
        return np.multiply(dy, self._y > 0.0, out=out)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(alpha)

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
    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._x = self._keep_input(x, out)
        neg = self.alpha * np.expm1(np.minimum(self._x, 0.0))
        return _into(np.where(self._x > 0.0, self._x, neg), out)

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        slope = np.where(self._x > 0.0, 1.0, self.alpha * np.exp(np.minimum(self._x, 0.0)))
        result: Array = np.multiply(dy, slope.astype(dy.dtype, copy=False), out=out)
        return result


class GELU(Activation):
    """Exact GELU, x * Phi(x), with Phi from the vectorised Cody erf."""

    name = "gelu"

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
    name = "sigmoid"

    def forward(self, x: Array, out: Array | None = None) -> Array:
        self._y = stable_sigmoid(x, out=out)
        return self._y

    def backward(self, dy: Array, out: Array | None = None) -> Array:
        return np.multiply(dy, self._y * (1.0 - self._y), out=out)


class Tanh(Activation):
    name = "tanh"

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
    """torch.nn.Softplus(beta=1, threshold=20): linear above the threshold."""

    name = "softplus"
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
    name = "silu"

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

    A mapping / object names the activation in ``type`` (or ``name``) and may carry ``alpha``
    (leaky_relu, elu). An unknown name raises ``SpecError``.
    """
    from core.errors import SpecError

    if isinstance(spec, Activation):
        return spec
    if spec is None:
        return Linear()
    if isinstance(spec, str):
        name, kwargs = spec, {}
    else:
        get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
        name = str(get("type") or get("name"))
        alpha = get("alpha")
        kwargs = {} if alpha is None else {"alpha": float(alpha)}
    if name not in ACTIVATIONS:
        raise SpecError("activation", f"unknown activation {name!r}; expected one of "
                        f"{sorted(ACTIVATIONS)}")
    if name not in ("leaky_relu", "elu"):
        kwargs = {}
    return ACTIVATIONS[name](**kwargs)
