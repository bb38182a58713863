"""NAdam: Adam with Nesterov momentum, weight decay optionally decoupled (torch.optim.NAdam)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.optimizers.base import (
    BETA1,
    BETA2,
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


class NAdam(Optimizer):
    """NAdam with PyTorch's update (Dozat 2016, with torch's momentum schedule).

    Per step ``t`` (from 1), ``g`` the gradient, ``p`` the parameter::

        p = p * (1 - lr * weight_decay)              (decoupled_weight_decay)
        g = g + weight_decay * p                     (otherwise, if weight_decay)
        mu      = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = mu_product * mu                 # float32, starts at 1
        m = lerp(m, g, 1 - beta1)                    # m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v / (1 - beta2**t)) + eps
        p = p + (-lr * (1 - mu) / (1 - mu_product)) * g / denom
        p = p + (-lr * mu_next / (1 - mu_product * mu_next)) * m / denom

    ``mu_product`` is one float32 scalar per parameter whatever the parameter's dtype, as
    torch keeps it under its default dtype; the two coefficients are Python floats computed
    from its value, as torch's single-tensor step does. The array passes are torch's, in
    torch's order (no rearranging as in :class:`~core.optimizers.adam.Adam`), run per
    ``BLOCK``-element slice: seventeen passes at most.

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, **hyper : see ``spec_params`` (torch's defaults: lr 2e-3, momentum_decay 4e-3)
    """

    name: ClassVar[str] = "nadam"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(2e-3),
        BETA1,
        BETA2,
        eps_param(1e-8),
        weight_decay_param(),
        Param("momentum_decay", "number", 4e-3, low=0.0,
              doc="How fast the momentum schedule mu_t rises towards beta1 (torch's psi)."),
        Param("decoupled_weight_decay", "boolean", False,
              doc="Shrink the weights by lr * weight_decay instead of adding L2 to the "
                  "gradient (NAdamW)."),
    )
    state_kinds: ClassVar[tuple[StateKind, ...]] = (
        StateKind("exp_avg", "Running mean of the gradient."),
        StateKind("exp_avg_sq", "Running mean of the squared gradient."),
        StateKind("mu_product", "Product of the momentum schedule, mu_1 * ... * mu_t.",
                  scalar=True),
    )
    blocked: ClassVar[bool] = True
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    momentum_decay: float
    decoupled_weight_decay: bool

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        exp_avg = self._buffer("exp_avg", name, param)
        exp_avg_sq = self._buffer("exp_avg_sq", name, param)
        mu_product = self._scalar("mu_product", name, fill=1.0)
        step = float(self.step_count)
        bias_correction2 = 1.0 - self.beta2**step
        mu = self.beta1 * (1.0 - 0.5 * (0.96 ** (step * self.momentum_decay)))
        mu_next = self.beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1.0) * self.momentum_decay)))
        mu_product *= mu  # a float32 multiply, as torch's 0-d tensor's mul_
        product = float(mu_product)
        grad_coef = -self.lr * (1.0 - mu) / (1.0 - product)
        avg_coef = (-self.lr * mu_next) / (1.0 - product * mu_next)
        decay = 1.0 - self.lr * self.weight_decay
        for (p, g, m, v), a, b in blocks(scratch, param, grad, exp_avg, exp_avg_sq):
            if self.decoupled_weight_decay:
                if self.weight_decay != 0.0:
                    p *= decay
            else:
                g = weight_decayed(g, p, self.weight_decay, out=a)
            lerp_(m, g, 1.0 - self.beta1, scratch=b)
            v *= self.beta2
            np.multiply(g, 1.0 - self.beta2, out=b)  # torch addcmul: v + (value * g) * g
            b *= g
            v += b
            np.divide(v, bias_correction2, out=b)
            np.sqrt(b, out=b)
            b += self.eps  # b is the denominator from here on
            # torch addcdiv twice: p + (coef * g) / denom, then p + (coef * m) / denom
            np.multiply(g, grad_coef, out=a)
            a /= b
            p += a
            np.multiply(m, avg_coef, out=a)
            a /= b
            p += a
