"""The Optimizer base: parameters by name, lazily built state, flat state dicts.

Every optimizer follows ``torch.optim``'s single-tensor code path operation by operation, so a
float64 run matches PyTorch to rounding. The hot path is written for one large flat array
(the training loop passes ``{"all": flat_params}``): each step is a handful of in-place ufunc
calls into two preallocated scratch arrays per parameter, with Python-float constants, which
NumPy 2 treats as weak scalars, so a float32 run stays float32 without a full-size temporary.

An optimizer with many passes per step (Adam: 12) sets ``blocked``: its scratch is then
``BLOCK`` elements and :func:`blocks` walks the parameter in slices, running every pass on a
slice while the slices of the parameter, gradient, state and scratch sit in L2. Element-wise
IEEE operations round the same whatever the slicing, so results do not depend on ``BLOCK``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from core.errors import CheckpointError, SpecError

Array = NDArray[Any]
StateValue = Array | float | int

#: Elements per slice of a blocked update. Six float32 slices (parameter, gradient, two
#: moments, two scratch) of 64 Ki elements take 1.5 MiB, inside a 2 MiB L2; measured on
#: 1.86 M float32 Adam parameters: 32 Ki and 64 Ki about equal, 16 Ki (more ufunc calls) and
#: 128 Ki (spills L2) slower.
BLOCK = 65536


class Optimizer(ABC):
    """Base class: holds ``params`` (updated in place), ``lr``, the step count and the state.

    Parameters
    ----------
    params : mapping name -> ndarray of any shape, float32 or float64; the arrays are updated
        in place, so they may be views into a network's flat parameter vector.
    lr : learning rate; schedules assign ``optimizer.lr`` between epochs.

    Notes
    -----
    ``state[kind][name]`` holds one array per parameter and kind (``"exp_avg"``,
    ``"momentum_buffer"``, ...), created on the first :meth:`step` as PyTorch does.
    """

    name: ClassVar[str]
    #: attribute names read from an ``OptimizerSpec`` by ``make_optimizer`` (JSON keys)
    hyper_names: ClassVar[tuple[str, ...]]
    #: the state kinds this optimizer may hold; ``load_state_dict`` refuses others
    state_kinds: ClassVar[tuple[str, ...]]
    #: True: the scratch pair is ``BLOCK`` elements (1-D) and ``_update`` walks :func:`blocks`
    blocked: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Array], lr: float) -> None:
        if not lr >= 0.0:
            raise SpecError("optimizer.learning_rate", f"must be >= 0, got {lr}")
        self.params: dict[str, Array] = dict(params)
        self._lr = float(lr)
        self.step_count = 0
        self.state: dict[str, dict[str, Array]] = {}
        self._scratch: dict[str, tuple[Array, Array]] = {}

    @property
    def lr(self) -> float:
        """The learning rate used by the next :meth:`step`."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = float(value)

    def step(self, grads: Mapping[str, Array]) -> None:
        """Apply one update to every parameter in place.

        Parameters
        ----------
        grads : mapping name -> ndarray, the same names and shapes as ``params``; never
            modified.
        """
        self.step_count += 1
        for name, param in self.params.items():
            grad = grads[name]
            if grad.shape != param.shape:
                raise ValueError(
                    f"gradient {name!r} has shape {grad.shape}, parameter has {param.shape}"
                )
            self._update(name, param, grad, self._scratch_for(name, param))

    @abstractmethod
    def _update(self, name: str, param: Array, grad: Array, scratch: tuple[Array, Array]) -> None:
        """Update ``param`` in place from ``grad``, using two scratch arrays of its shape
        (or, if ``blocked``, of at most ``BLOCK`` elements, for :func:`blocks`)."""

    def _scratch_for(self, name: str, param: Array) -> tuple[Array, Array]:
        pair = self._scratch.get(name)
        if pair is None:
            if self.blocked:
                size = min(param.size, BLOCK)
                pair = (np.empty(size, param.dtype), np.empty(size, param.dtype))
            else:
                pair = (np.empty_like(param), np.empty_like(param))
            self._scratch[name] = pair
        return pair

    def _buffer(self, kind: str, name: str, like: Array, fill: float = 0.0) -> Array:
        """The ``kind`` state array of parameter ``name``, created filled with ``fill``."""
        bucket = self.state.setdefault(kind, {})
        buf = bucket.get(name)
        if buf is None:
            buf = np.full_like(like, fill)
            bucket[name] = buf
        return buf

    def state_dict(self) -> dict[str, StateValue]:
        """A flat copy of the state: ``"step"``, ``"lr"`` and ``"<kind>/<param name>"`` arrays.

        Every value is an ndarray or a Python scalar, so the dict goes into an ``.npz`` as is.
        """
        out: dict[str, StateValue] = {"step": self.step_count, "lr": self._lr}
        for kind, bucket in self.state.items():
            for name, array in bucket.items():
                out[f"{kind}/{name}"] = array.copy()
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` exactly; later steps continue bit for bit.

        Scalars may come back from an ``.npz`` as 0-d arrays; arrays are copied and cast to
        the parameter's dtype.
        """
        if "step" not in state or "lr" not in state:
            raise CheckpointError("optimizer state needs 'step' and 'lr'")
        restored: dict[str, dict[str, Array]] = {}
        for key, value in state.items():
            if key in ("step", "lr"):
                continue
            kind, sep, name = key.partition("/")
            if not sep or kind not in self.state_kinds or name not in self.params:
                raise CheckpointError(f"unexpected {self.name} state entry {key!r}")
            param = self.params[name]
            array = np.asarray(value)
            if array.shape != param.shape:
                raise CheckpointError(
                    f"state {key!r} has shape {array.shape}, parameter has {param.shape}"
                )
            restored.setdefault(kind, {})[name] = array.astype(param.dtype, copy=True)
        self.state = restored
        self.step_count = int(state["step"])
        self.lr = float(state["lr"])


def blocks(scratch: tuple[Array, Array], *arrays: Array
           ) -> Iterator[tuple[list[Array], Array, Array]]:
    """Matching slices of ``arrays`` (all of one shape) with scratch slices of their length.

    Parameters
    ----------
    scratch : two 1-D arrays of ``min(size, BLOCK)`` elements (``Optimizer.blocked``)
    arrays : the parameter, its gradient and state arrays, shape ``S``; written in place
        through the slices, so they must be C-contiguous for the flat views to alias them

    Yields
    ------
    (views, a, b) : ``views[i]`` is a slice of ``arrays[i]`` of shape ``(k,)`` with
        ``k <= BLOCK``; ``a``, ``b`` are scratch of shape ``(k,)``. Arrays that are not all
        C-contiguous come whole, shape ``S``, with a fresh scratch pair (a rare path).
    """
    if not all(x.flags.c_contiguous for x in arrays):
        yield list(arrays), np.empty_like(arrays[0]), np.empty_like(arrays[0])
        return
    flat = [x.reshape(-1) for x in arrays]
    a, b = scratch
    size = flat[0].shape[0]
    for start in range(0, size, BLOCK):
        stop = min(start + BLOCK, size)
        yield [x[start:stop] for x in flat], a[:stop - start], b[:stop - start]


def weight_decayed(grad: Array, param: Array, weight_decay: float, out: Array) -> Array:
    """``grad + weight_decay * param`` into ``out`` (torch ``grad.add(param, alpha=wd)``).

    Returns ``grad`` itself when ``weight_decay`` is 0, as PyTorch skips the addition.
    """
    if weight_decay == 0.0:
        return grad
    np.multiply(param, weight_decay, out=out)
    out += grad
    return out


def lerp_(target: Array, end: Array, weight: float, scratch: Array) -> None:
    """``target.lerp_(end, weight)`` with ATen's two formulas (chosen by ``|weight| < 0.5``)."""
    np.subtract(end, target, out=scratch)
    if abs(weight) < 0.5:
        scratch *= weight
        target += scratch
    else:
        scratch *= 1.0 - weight
        np.subtract(end, scratch, out=target)


def check_range(name: str, value: float, low: float, high: float | None = None) -> float:
    """``float(value)`` if ``low <= value`` (and ``value < high``), else a SpecError naming
    ``optimizer.<name>``."""
    value = float(value)
    if not value >= low or (high is not None and not value < high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise SpecError(f"optimizer.{name}", f"must be {bound}, got {value}")
    return value
