"""Losses with torch's reduction="mean" semantics, and the output link each implies.

``forward(outputs, targets)`` returns the loss as a Python float and keeps what backward
needs; ``backward()`` returns dL/doutputs in the run dtype (already divided by the batch size
or, for weighted cross-entropy, by the summed weights of the targets, as torch does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from core.activations import softmax, stable_sigmoid
from core.errors import SpecError
from core.spec.training import CLASS_WEIGHTS, DELTA, LABEL_SMOOTHING

Array = NDArray[Any]


def _field(spec: Any, name: str, default: Any) -> Any:
    if spec is None or isinstance(spec, str):
        return default
    value = spec.get(name) if isinstance(spec, dict) else getattr(spec, name, None)
    return default if value is None else value


class Loss(ABC):
    """Base class; ``spec`` is a LossSpec (or dict, or just the name), ``dtype`` the run's."""

    name: ClassVar[str] = ""
    link_name: ClassVar[str] = "identity"

    def __init__(self, spec: Any = None, dtype: DTypeLike = np.float32) -> None:
        self.spec = spec
        self.dtype = np.dtype(dtype)

    @abstractmethod
    def forward(self, outputs: Array, targets: Array) -> float:
        """Mean loss of a batch: outputs (N, k), targets (N,) or (N, k)."""

    @abstractmethod
    def backward(self) -> Array:
        """dL/doutputs of the last forward, shape of ``outputs``, run dtype."""

    def link(self, outputs: Array) -> Array:
        """Predictions from raw outputs (the identity here)."""
        return outputs

    def _like(self, outputs: Array, targets: Array) -> Array:
        # Regression / BCE targets: run dtype, shaped like the outputs ((N,) -> (N, 1)).
        t = np.asarray(targets, dtype=self.dtype)
        if t.shape != outputs.shape and t.size == outputs.size:
            t = t.reshape(outputs.shape)
        return t


class CrossEntropy(Loss):
    """torch.nn.CrossEntropyLoss from logits (N, C) and integer labels (N,).

    With label smoothing eps and class weights w the per-row target distribution is
    q[c] = (1 - eps) w[y] [c == y] + eps/C w[c], and the mean divides by sum_i w[y_i].
    """

    name = "cross_entropy"
    link_name = "softmax"

    def __init__(self, spec: Any = None, dtype: DTypeLike = np.float32) -> None:
        super().__init__(spec, dtype)
        self.label_smoothing = float(_field(spec, LABEL_SMOOTHING.name, LABEL_SMOOTHING.default))
        weights = _field(spec, CLASS_WEIGHTS.name, CLASS_WEIGHTS.default)
        self.class_weights = None if weights is None else np.asarray(weights, dtype=self.dtype)

    def forward(self, outputs: Array, targets: Array) -> float:
        n, c = outputs.shape
        labels = np.asarray(targets).reshape(-1).astype(np.intp, copy=False)
        rows = np.arange(n)
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - log_z
        eps, w = self.label_smoothing, self.class_weights
        if w is None:
            denom = float(n)
            picked = logp[rows, labels]
            total = -(1.0 - eps) * picked.sum()
            if eps:
                total -= eps / c * logp.sum()
        else:
            w_t = w[labels]
            denom = float(w_t.sum())
            total = -(1.0 - eps) * (w_t * logp[rows, labels]).sum()
            if eps:
                total -= eps / c * (logp @ w).sum()
        self._cache = (logp, labels, rows, denom)
        return float(total) / denom

    def backward(self) -> Array:
        logp, labels, rows, denom = self._cache
        c = logp.shape[1]
        grad = np.exp(logp)
        eps, w = self.label_smoothing, self.class_weights
        if w is None:
            # sum_c q[c] = 1 per row: grad = p - q.
            if eps:
                grad -= eps / c
            grad[rows, labels] -= 1.0 - eps
        else:
            w_t = w[labels]
            q_sum = (1.0 - eps) * w_t + eps / c * float(w.sum())
            grad *= q_sum[:, None]
            if eps:
                grad -= (eps / c) * w
            grad[rows, labels] -= (1.0 - eps) * w_t
        grad *= 1.0 / denom
        out: Array = grad.astype(self.dtype, copy=False)
        return out

    def link(self, outputs: Array) -> Array:
        return softmax(outputs, axis=1)


class BinaryCrossEntropy(Loss):
    """torch.nn.BCEWithLogitsLoss: logits (N, k) with 0/1 (or soft) targets (N,) or (N, k)."""

    name = "binary_cross_entropy"
    link_name = "sigmoid"

    def forward(self, outputs: Array, targets: Array) -> float:
        t = self._like(outputs, targets)
        # max(z, 0) - z t + log(1 + exp(-|z|)): no overflow for either sign of z.
        per = np.maximum(outputs, 0.0) - outputs * t + np.log1p(np.exp(-np.abs(outputs)))
        self._cache = (outputs, t)
        return float(per.sum()) / outputs.size

    def backward(self) -> Array:
        outputs, t = self._cache
        grad = stable_sigmoid(outputs)
        grad -= t
        grad *= 1.0 / outputs.size
        return grad

    def link(self, outputs: Array) -> Array:
        return stable_sigmoid(outputs)


class MSE(Loss):
    name = "mse"

    def forward(self, outputs: Array, targets: Array) -> float:
        self._diff = outputs - self._like(outputs, targets)
        return float(np.vdot(self._diff, self._diff)) / self._diff.size

    def backward(self) -> Array:
        return self._diff * (2.0 / self._diff.size)


class MAE(Loss):
    """torch.nn.L1Loss; the gradient of |0| is 0 (sign)."""

    name = "mae"

    def forward(self, outputs: Array, targets: Array) -> float:
        self._diff = outputs - self._like(outputs, targets)
        return float(np.abs(self._diff).sum()) / self._diff.size

    def backward(self) -> Array:
        grad: Array = np.sign(self._diff) * (1.0 / self._diff.size)
        return grad


class Huber(Loss):
    """torch.nn.HuberLoss(delta): 0.5 d^2 for |d| < delta, else delta (|d| - delta/2)."""

    name = "huber"

    def __init__(self, spec: Any = None, dtype: DTypeLike = np.float32) -> None:
        super().__init__(spec, dtype)
        self.delta = float(_field(spec, DELTA.name, DELTA.default))

    def forward(self, outputs: Array, targets: Array) -> float:
        self._diff = outputs - self._like(outputs, targets)
        a = np.abs(self._diff)
        per = np.where(a < self.delta, 0.5 * a * a, self.delta * (a - 0.5 * self.delta))
        return float(per.sum()) / self._diff.size

    def backward(self) -> Array:
        grad = np.clip(self._diff, -self.delta, self.delta)
        grad *= 1.0 / self._diff.size
        out: Array = grad.astype(self.dtype, copy=False)
        return out


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (CrossEntropy, BinaryCrossEntropy, MSE, MAE, Huber)
}

LINKS: dict[str, str] = {name: cls.link_name for name, cls in LOSSES.items()}


def make_loss(spec: Any, dtype: DTypeLike = np.float32) -> Loss:
    """A loss from a LossSpec, a dict with ``type``, or a bare name."""
    name = spec if isinstance(spec, str) else _field(spec, "type", None)
    if name not in LOSSES:
        raise SpecError("loss.type", f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name](spec, dtype)


def _identity(outputs: Array) -> Array:
    return outputs


LINK_FUNCTIONS: dict[str, Callable[[Array], Array]] = {
    "softmax": lambda outputs: softmax(outputs, axis=1),
    "sigmoid": stable_sigmoid,
    "identity": _identity,
}
