"""Adam (optionally AMSGrad) and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW``."""

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

AMSGRAD = Param("amsgrad", "boolean", False,
                doc="Normalise by the running maximum of the second moment (AMSGrad).")
STATE: tuple[StateKind, ...] = (
    StateKind("exp_avg", "Running mean of the gradient."),
    StateKind("exp_avg_sq", "Running mean of the squared gradient."),
    StateKind("max_exp_avg_sq", "Running maximum of exp_avg_sq.", when="amsgrad"),
)


class Adam(Optimizer):
    """Adam with PyTorch's update; weight decay is L2 added to the gradient.

    Per step ``t`` (from 1), ``g`` the gradient, ``p`` the parameter::

        g = g + weight_decay * p                     (AdamW instead: p = p * (1 - lr * wd))
        m = lerp(m, g, 1 - beta1)                    # m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                        (amsgrad: the raw second moment's max)
        denom = sqrt(v or v_max) / sqrt(1 - beta2**t) + eps     # eps outside the sqrt
        p = p - (lr / (1 - beta1**t)) * m / denom

    The step runs in ``BLOCK``-element slices (all twelve passes per slice, in L2), and
    scales numerator and denominator by ``sqrt(1 - beta2**t)`` to save a pass: a float64 run
    differs from torch's operation order by an ulp or so.

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, **hyper : see ``spec_params`` (torch's defaults)
    """

    name: ClassVar[str] = "adam"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(1e-3), BETA1, BETA2, eps_param(1e-8), weight_decay_param(), AMSGRAD,
    )
    state_kinds: ClassVar[tuple[StateKind, ...]] = STATE
    #: torch's ``decoupled_weight_decay``, fixed per class: True is the ``adamw`` type
    decoupled_weight_decay: ClassVar[bool] = False
    blocked: ClassVar[bool] = True
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        state = [self._buffer("exp_avg", name, param), self._buffer("exp_avg_sq", name, param)]
        if self.amsgrad:
            state.append(self._buffer("max_exp_avg_sq", name, param))
        step = float(self.step_count)
        step_size = self.lr / (1.0 - self.beta1**step)
        bias_correction2_sqrt = (1.0 - self.beta2**step) ** 0.5  # torch uses ** 0.5, not sqrt
        # torch: p += -step_size * m / (sqrt(v) / bc2 + eps); both sides of the division
        # times bc2 saves a pass: p += (-step_size * bc2) * (m / (sqrt(v) + eps * bc2))
        eps_scaled = self.eps * bias_correction2_sqrt
        factor = -step_size * bias_correction2_sqrt
        decay = 1.0 - self.lr * self.weight_decay
        for (p, g, m, v, *vmax), a, b in blocks(scratch, param, grad, *state):
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
            second = v
            if vmax:
                second = vmax[0]
                np.maximum(second, v, out=second)
            np.sqrt(second, out=b)
            b += eps_scaled
            np.divide(m, b, out=b)
            b *= factor
            p += b


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` first), torch's AdamW.

    Same parameters as :class:`Adam`; ``weight_decay`` defaults to 0.01 as in PyTorch.
    """

    name: ClassVar[str] = "adamw"
    spec_params: ClassVar[tuple[Param, ...]] = (
        learning_rate_param(1e-3), BETA1, BETA2, eps_param(1e-8), weight_decay_param(1e-2),
        AMSGRAD,
    )
    decoupled_weight_decay: ClassVar[bool] = True
