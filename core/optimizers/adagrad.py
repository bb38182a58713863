"""Adagrad (lr decay, initial accumulator, L2 weight decay), as ``torch.optim.Adagrad``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from core.optimizers.base import (
    Array,
    Optimizer,
    StateKind,
    blocks,
    eps_param,
    learning_rate_param,
    weight_decay_param,
    weight_decayed,
)
from core.spec.params import Param


class Adagrad(Optimizer):
    """Adagrad with PyTorch's update.

    Per step ``t`` (from 1), ``g`` the gradient, ``p`` the parameter::

        g = g + weight_decay * p                     (if weight_decay)
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g                            # sum starts at initial_accumulator_value
        p = p - clr * g / (sqrt(sum) + eps)

    Unlike the other optimizers, PyTorch fills ``sum`` when the optimizer is built, not on the
    first step, so this one does too.

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, **hyper : see ``spec_params`` (torch's defaults: lr 1e-2, eps 1e-10)
    """

    name: ClassVar[str] = "adagrad"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(1e-2),
        Param("lr_decay", "number", 0.0, low=0.0,
              doc="Step t uses learning_rate / (1 + (t - 1) * lr_decay)."),
        weight_decay_param(),
        Param("initial_accumulator_value", "number", 0.0, low=0.0,
              doc="Starting value of the sum of squared gradients."),
        eps_param(1e-10),
    )
    state_kinds: ClassVar[tuple[StateKind, ...]] = (
        StateKind("sum", "Sum of the squared gradients."),
    )
    blocked: ClassVar[bool] = True  # 7-9 passes: run them per L2-sized slice
    lr_decay: float
    weight_decay: float
    initial_accumulator_value: float
    eps: float

    def __init__(self, params: Mapping[str, Array], lr: float | None = None,
                 **hyper: Any) -> None:
        super().__init__(params, lr, **hyper)
        for name, param in self.params.items():
            self._buffer("sum", name, param, fill=self.initial_accumulator_value)

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        clr = self.lr / (1.0 + (float(self.step_count) - 1.0) * self.lr_decay)
        state_sum = self._buffer("sum", name, param, fill=self.initial_accumulator_value)
        for (p, grad_block, acc), a, b in blocks(scratch, param, grad, state_sum):
            g = weight_decayed(grad_block, p, self.weight_decay, out=a)
            np.multiply(g, g, out=b)
            acc += b
            np.sqrt(acc, out=b)
            b += self.eps
            # torch addcdiv: p + (-clr * g) / std
            np.multiply(g, -clr, out=a)
            a /= b
            p += a
