"""RMSprop (centered, momentum, L2 weight decay), as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.optimizers.base import (
    MOMENTUM,
    Array,
    Optimizer,
    StateKind,
    blocks,
    eps_param,
    learning_rate_param,
    lerp_,
    weight_decay_param,
    weight_decayed,
)
from core.spec.params import Param


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
    lr, **hyper : see ``spec_params`` (torch's defaults: lr 1e-2, alpha 0.99)
    """

    name: ClassVar[str] = "rmsprop"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(1e-2),
        Param("alpha", "number", 0.99, low=0.0,
              doc="Smoothing constant of the squared gradient's running mean."),
        eps_param(1e-8),
        weight_decay_param(),
        MOMENTUM,
        Param("centered", "boolean", False,
              doc="Normalise by the estimated variance instead of the raw second moment."),
    )
    state_kinds: ClassVar[tuple[StateKind, ...]] = (
        StateKind("square_avg", "Running mean of the squared gradient."),
        StateKind("grad_avg", "Running mean of the gradient.", when="centered"),
        StateKind("momentum_buffer", "The momentum buffer.", when="momentum"),
    )
    blocked: ClassVar[bool] = True  # 8-13 passes: run them per L2-sized slice
    alpha: float
    eps: float
    weight_decay: float
    momentum: float
    centered: bool

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
