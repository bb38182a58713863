"""Optimizers with ``torch.optim`` semantics, by spec name, and the factory the trainer calls.

``OPTIMIZERS`` maps the spec's ``optimizer.type`` to a class; the classic aliases (GD, BGD,
mini-batch GD, momentum) are resolved to ``"sgd"`` plus a batch size by ``core.spec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import SpecError
from core.optimizers.adagrad import Adagrad
from core.optimizers.adam import Adam, AdamW
from core.optimizers.base import Array, Optimizer, StateValue
from core.optimizers.rmsprop import RMSprop
from core.optimizers.sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
}


def make_optimizer(spec: Any, params: Mapping[str, Array]) -> Optimizer:
    """Build the optimizer an ``OptimizerSpec`` names, over ``params``.

    Parameters
    ----------
    spec : object with ``type`` and ``learning_rate`` plus the hyperparameters named by the
        class's ``hyper_names`` (the JSON keys of DESIGN §3); a missing or None attribute
        keeps PyTorch's default for that optimizer.
    params : name -> ndarray, updated in place by ``step``
    """
    kind = spec.type
    if kind not in OPTIMIZERS:
        raise SpecError("optimizer.type",
                        f"unknown optimizer {kind!r}; expected one of {sorted(OPTIMIZERS)}")
    cls = OPTIMIZERS[kind]
    hyper: dict[str, Any] = {}
    for name in cls.hyper_names:
        value = getattr(spec, name, None)
        if value is not None:
            hyper[name] = value
    lr = getattr(spec, "learning_rate", None)
    if lr is not None:
        hyper["lr"] = lr
    return cls(params, **hyper)


__all__ = [
    "OPTIMIZERS", "SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "StateValue",
    "make_optimizer",
]
