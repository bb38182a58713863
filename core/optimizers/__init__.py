"""Optimizers with ``torch.optim`` semantics, by spec name, and the factory the trainer calls.

``OPTIMIZERS`` maps the spec's ``optimizer.type`` to a class; each class declares its
hyperparameters (``spec_params``) and state (``state_kinds``), which ``core.spec`` reads to
parse and describe the ``optimizer`` section. The classic aliases (GD, BGD, mini-batch GD,
momentum) are resolved to ``"sgd"`` plus a batch size by ``core.spec``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import SpecError
from core.optimizers.adagrad import Adagrad
from core.optimizers.adam import Adam, AdamW
from core.optimizers.base import Array, Optimizer, StateKind, StateValue
from core.optimizers.nadam import NAdam
from core.optimizers.rmsprop import RMSprop
from core.optimizers.sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "nadam": NAdam,
}


def make_optimizer(spec: Any, params: Mapping[str, Array]) -> Optimizer:
    """Build the optimizer an ``OptimizerSpec`` names, over ``params``.

    Parameters
    ----------
    spec : object with ``type`` and the JSON names of the class's ``spec_params`` as
        attributes (``learning_rate``, ``beta1``, ...); a missing or None attribute keeps
        PyTorch's default for that optimizer.
    params : name -> ndarray, updated in place by ``step``
    """
    kind = spec.type
    if kind not in OPTIMIZERS:
        raise SpecError("optimizer.type",
                        f"unknown optimizer {kind!r}; expected one of {sorted(OPTIMIZERS)}")
    cls = OPTIMIZERS[kind]
    hyper = {p.name: getattr(spec, p.name, None) for p in cls.spec_params}
    return cls(params, lr=hyper.pop("learning_rate"), **hyper)


__all__ = [
    "OPTIMIZERS", "SGD", "Adagrad", "Adam", "AdamW", "NAdam", "Optimizer", "RMSprop", "StateKind",
    "StateValue", "make_optimizer",
]
