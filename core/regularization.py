"""L1 and L2 weight penalties (docs/spec.md): weight matrices only, never biases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]


def add_penalty_grads(params: Mapping[str, Array], grads: Mapping[str, Array],
                      weight_names: Iterable[str], l1: float = 0.0, l2: float = 0.0) -> float:
    """Add the penalties' gradients to ``grads`` in place and return the penalty.

    ``l2 = λ`` adds ``(λ/2) Σ‖W‖²`` to the loss and ``λ W`` to the gradient; ``l1 = λ`` adds
    ``λ Σ|W|`` and ``λ sign(W)`` (0 at 0, as ``torch.sign``). Gradients keep their dtype.

    Parameters
    ----------
    params : name -> ndarray, the network's parameters
    grads : name -> ndarray, same names and shapes; the penalised entries are modified
    weight_names : the names to penalise (``network.weight_names``: dense/conv weights)
    l1, l2 : non-negative penalty strengths

    Returns
    -------
    float
        The penalty to add to the batch loss (0.0 when both strengths are 0).
    """
    l1, l2 = float(l1), float(l2)
    if l1 < 0.0 or l2 < 0.0:
        raise ValueError(f"l1 and l2 must be non-negative, got {l1}, {l2}")
    penalty = 0.0
    if l1 == 0.0 and l2 == 0.0:
        return penalty
    for name in weight_names:
        weight, grad = params[name], grads[name]
        flat = weight.reshape(-1)
        if l2 != 0.0:
            # BLAS dot in the run's dtype: no float64 copy of the weights on every batch
            penalty += 0.5 * l2 * float(np.dot(flat, flat))
            grad += l2 * weight
        if l1 != 0.0:
            penalty += l1 * float(np.abs(flat).sum())
            grad += l1 * np.sign(weight)
    return penalty
