"""RMSprop (centered, momentum, L2 weight decay), as ``torch.optim.RMSprop``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from core.optimizers.base import (
    Array,
    Optimizer,
    blocks,
    check_range,
    lerp_,
    weight_decayed,
)


class RMSprop(Optimizer):
    """RMSprop with PyTorch's update (eps added after the square root, no bias correction).

    Per step, ``g`` the gradient, ``p`` the parameter, all state starting at zeros::

        g = g + weight_decay * p                     (if weight_decay)
        sq = alpha * sq + (1 - alpha) * g * g
        centered:  ga = lerp(ga, g, 1 - alpha);  avg = sqrt(sq - ga * ga) + eps
        otherwise: avg = sqrt(sq) + eps
        momentum:  buf = momentum * buf + g / avg;  p = p - lr * buf
        otherwise: p = p - lr * g / avg

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, alpha, eps, weight_decay, momentum : floats, torch's defaults (lr 1e-2, alpha 0.99)
    centered : normalise by the estimated variance instead of the raw second moment
    """

    name: ClassVar[str] = "rmsprop"
    hyper_names: ClassVar[tuple[str, ...]] = (
        "alpha", "eps", "weight_decay", "momentum", "centered",
    )
    state_kinds: ClassVar[tuple[str, ...]] = ("square_avg", "grad_avg", "momentum_buffer")
    blocked: ClassVar[bool] = True  # 8-13 passes: run them per L2-sized slice

    def __init__(self, params: Mapping[str, Array], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, lr)
        self.alpha = check_range("alpha", alpha, 0.0)
        self.eps = check_range("eps", eps, 0.0)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        self.momentum = check_range("momentum", momentum, 0.0)
        self.centered = bool(centered)

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        state = [self._buffer("square_avg", name, param)]
        if self.centered:
            state.append(self._buffer("grad_avg", name, param))
        if self.momentum > 0.0:
            state.append(self._buffer("momentum_buffer", name, param))
        for views, a, b in blocks(scratch, param, grad, *state):
            self._update_block(views, a, b)

    def _update_block(self, views: list[Array], a: Array, b: Array) -> None:
        """One slice: ``views`` = parameter, gradient, square_avg[, grad_avg][, buffer]."""
        param, grad, square_avg = views[:3]
        g = weight_decayed(grad, param, self.weight_decay, out=a)
        square_avg *= self.alpha
        np.multiply(g, 1.0 - self.alpha, out=b)  # torch addcmul: sq + (value * g) * g
        b *= g
        square_avg += b
        avg = b
        if self.centered:
            grad_avg = views[3]
            lerp_(grad_avg, g, 1.0 - self.alpha, scratch=b)
            np.multiply(grad_avg, -1.0, out=avg)
            avg *= grad_avg
            avg += square_avg
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        avg += self.eps
        if self.momentum > 0.0:
            buf = views[-1]
            buf *= self.momentum
            np.divide(g, avg, out=avg)  # torch addcdiv with value 1: buf + g / avg
            buf += avg
            np.multiply(buf, -self.lr, out=avg)
            param += avg
        else:
            # torch addcdiv: p + (-lr * g) / avg
            np.multiply(g, -self.lr, out=a)
            a /= avg
            param += a
