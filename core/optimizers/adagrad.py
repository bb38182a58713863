"""Adagrad (lr decay, initial accumulator, L2 weight decay), as ``torch.optim.Adagrad``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from core.optimizers.base import Array, Optimizer, blocks, check_range, weight_decayed


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
    lr, lr_decay, weight_decay, initial_accumulator_value, eps : floats, torch's defaults
        (lr 1e-2, eps 1e-10)
    """

    name: ClassVar[str] = "adagrad"
    hyper_names: ClassVar[tuple[str, ...]] = (
        "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
    )
    state_kinds: ClassVar[tuple[str, ...]] = ("sum",)
    blocked: ClassVar[bool] = True  # 7-9 passes: run them per L2-sized slice

    def __init__(self, params: Mapping[str, Array], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, lr)
        self.lr_decay = check_range("lr_decay", lr_decay, 0.0)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        self.initial_accumulator_value = check_range(
            "initial_accumulator_value", initial_accumulator_value, 0.0
        )
        self.eps = check_range("eps", eps, 0.0)
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
