"""SGD with momentum, dampening, Nesterov and L2 weight decay, as ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from core.errors import SpecError
from core.optimizers.base import Array, Optimizer, check_range, weight_decayed


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's update.

    Per step, with ``g`` the gradient and ``p`` the parameter::

        g = g + weight_decay * p                      (if weight_decay)
        buf = g            on the first step          (if momentum: no dampening yet)
        buf = momentum * buf + (1 - dampening) * g    afterwards
        g = g + momentum * buf  if nesterov else buf
        p = p - lr * g

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, momentum, dampening, weight_decay : floats, torch's defaults (lr 1e-3)
    nesterov : Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``
    """

    name: ClassVar[str] = "sgd"
    hyper_names: ClassVar[tuple[str, ...]] = ("momentum", "dampening", "nesterov", "weight_decay")
    state_kinds: ClassVar[tuple[str, ...]] = ("momentum_buffer",)

    def __init__(self, params: Mapping[str, Array], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = check_range("momentum", momentum, 0.0)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        if self.nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise SpecError("optimizer.nesterov",
                            "Nesterov momentum requires momentum > 0 and dampening 0")

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        a, b = scratch
        d = weight_decayed(grad, param, self.weight_decay, out=a)
        if self.momentum != 0.0:
            bucket = self.state.setdefault("momentum_buffer", {})
            buf = bucket.get(name)
            if buf is None:
                # torch clones the first gradient: no dampening on step one
                bucket[name] = d.copy()
                buf = bucket[name]
            else:
                buf *= self.momentum
                if self.dampening == 0.0:
                    buf += d
                else:
                    np.multiply(d, 1.0 - self.dampening, out=b)
                    buf += b
            if self.nesterov:
                np.multiply(buf, self.momentum, out=b)
                np.add(d, b, out=a)
                d = a
            else:
                d = buf
        np.multiply(d, -self.lr, out=b)
        param += b
