"""SGD with momentum, dampening, Nesterov and L2 weight decay, as ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from core.optimizers.base import (
    MOMENTUM,
    Array,
    Optimizer,
    StateKind,
    learning_rate_param,
    weight_decay_param,
    weight_decayed,
)
from core.spec.params import Param


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
    lr, **hyper : see ``spec_params`` (torch's defaults: lr 1e-3, no momentum);
        ``nesterov`` needs ``momentum > 0`` and ``dampening == 0``
    """

    name: ClassVar[str] = "sgd"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(1e-3),
        MOMENTUM,
        Param("dampening", "number", 0.0, low=0.0, high=1.0,
              doc="Fraction of each new gradient left out of the momentum buffer."),
        Param("nesterov", "boolean", False,
              doc="Nesterov momentum (needs momentum > 0 and dampening 0)."),
        weight_decay_param(),
    )
    state_kinds: ClassVar[tuple[StateKind, ...]] = (
        StateKind("momentum_buffer", "The momentum buffer.", when="momentum"),
    )
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float

    @classmethod
    def conflicts(cls, hyper: Mapping[str, Any]) -> dict[str, str]:
        if hyper["nesterov"] and (hyper["momentum"] <= 0.0 or hyper["dampening"] != 0.0):
            return {"nesterov": "Nesterov momentum requires momentum > 0 and dampening 0 "
                    f"(as torch), got momentum {hyper['momentum']!r}, "
                    f"dampening {hyper['dampening']!r}"}
        return {}

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
