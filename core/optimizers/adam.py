"""Adam (optionally AMSGrad) and AdamW, as ``torch.optim.Adam`` / ``torch.optim.AdamW``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from core.optimizers.base import Array, Optimizer, check_range, lerp_, weight_decayed


class Adam(Optimizer):
    """Adam with PyTorch's update; weight decay is L2 added to the gradient.

    Per step ``t`` (from 1), ``g`` the gradient, ``p`` the parameter::

        g = g + weight_decay * p                     (AdamW instead: p = p * (1 - lr * wd))
        m = lerp(m, g, 1 - beta1)                    # m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                        (amsgrad: the raw second moment's max)
        denom = sqrt(v or v_max) / sqrt(1 - beta2**t) + eps     # eps outside the sqrt
        p = p - (lr / (1 - beta1**t)) * m / denom

    Parameters
    ----------
    params : name -> ndarray, updated in place
    lr, beta1, beta2, eps, weight_decay : floats, torch's defaults
    amsgrad : keep the running maximum of the second moment
    """

    name: ClassVar[str] = "adam"
    hyper_names: ClassVar[tuple[str, ...]] = ("beta1", "beta2", "eps", "weight_decay", "amsgrad")
    state_kinds: ClassVar[tuple[str, ...]] = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled_weight_decay: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Array], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False) -> None:
        super().__init__(params, lr)
        self.beta1 = check_range("beta1", beta1, 0.0, 1.0)
        self.beta2 = check_range("beta2", beta2, 0.0, 1.0)
        self.eps = check_range("eps", eps, 0.0)
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        self.amsgrad = bool(amsgrad)

    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        a, b = scratch
        if self.decoupled_weight_decay:
            if self.weight_decay != 0.0:
                param *= 1.0 - self.lr * self.weight_decay
            g = grad
        else:
            g = weight_decayed(grad, param, self.weight_decay, out=a)
        exp_avg = self._buffer("exp_avg", name, param)
        exp_avg_sq = self._buffer("exp_avg_sq", name, param)
        lerp_(exp_avg, g, 1.0 - self.beta1, scratch=b)
        exp_avg_sq *= self.beta2
        np.multiply(g, 1.0 - self.beta2, out=b)  # torch addcmul: v + (value * g) * g
        b *= g
        exp_avg_sq += b
        second = exp_avg_sq
        if self.amsgrad:
            second = self._buffer("max_exp_avg_sq", name, param)
            np.maximum(second, exp_avg_sq, out=second)

        step = float(self.step_count)
        step_size = self.lr / (1.0 - self.beta1**step)
        bias_correction2_sqrt = (1.0 - self.beta2**step) ** 0.5  # torch uses ** 0.5, not sqrt
        denom = b
        np.sqrt(second, out=denom)
        denom /= bias_correction2_sqrt
        denom += self.eps
        # torch addcdiv: p + (value * m) / denom
        np.multiply(exp_avg, -step_size, out=a)
        a /= denom
        param += a


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` first), torch's AdamW.

    Same parameters as :class:`Adam`; ``weight_decay`` defaults to 0.01 as in PyTorch.
    """

    name: ClassVar[str] = "adamw"
    decoupled_weight_decay: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Array], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False) -> None:
        super().__init__(params, lr, beta1, beta2, eps, weight_decay, amsgrad)
