"""The Optimizer base: declared hyperparameters, parameters by name, lazily built state.

Every optimizer follows ``torch.optim``'s single-tensor code path operation by operation, so a
float64 run matches PyTorch to rounding. The hot path is written for one large flat array
(the training loop passes ``{"all": flat_params}``): each step is a handful of in-place ufunc
calls into two preallocated scratch arrays per parameter, with Python-float constants, which
NumPy 2 treats as weak scalars, so a float32 run stays float32 without a full-size temporary.

An optimizer with many passes per step (Adam: 12) sets ``blocked``: its scratch is then
``BLOCK`` elements and :func:`blocks` walks the parameter in slices, running every pass on a
slice while the slices of the parameter, gradient, state and scratch sit in L2. Element-wise
IEEE operations round the same whatever the slicing, so results do not depend on ``BLOCK``.

A class declares its hyperparameters once, as ``spec_params`` (JSON name, torch's default,
range, one line of doc), and its state as ``state_kinds``. The constructor, the job-spec parser
(``core.spec.optim``), the dry run and the reference docs all read those declarations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from core.errors import CheckpointError, SpecError
from core.spec.params import Param, check_values

Array = NDArray[Any]
StateValue = Array | float | int

#: Elements per slice of a blocked update. Six float32 slices (parameter, gradient, two
#: moments, two scratch) of 64 Ki elements take 1.5 MiB, inside a 2 MiB L2; measured on
#: 1.86 M float32 Adam parameters: 32 Ki and 64 Ki about equal, 16 Ki (more ufunc calls) and
#: 128 Ki (spills L2) slower.
BLOCK = 65536

#: torch keeps per-parameter scalar state (``step``, NAdam's ``mu_product``) in
#: ``_get_scalar_dtype()``: float32 under its default dtype, whatever the parameter's dtype.
SCALAR_DTYPE = np.float32


@dataclass(frozen=True)
class StateKind:
    """One kind of state an optimizer keeps per parameter (its prefix in the state dict).

    ``when`` names the hyperparameter that switches it on (kept while that value is truthy,
    e.g. ``amsgrad`` or ``momentum`` > 0); None means always. A ``scalar`` kind holds one
    0-d ``SCALAR_DTYPE`` value per parameter instead of an array of the parameter's shape.
    """

    name: str
    doc: str
    when: str | None = None
    scalar: bool = False


def learning_rate_param(default: float) -> Param:
    """The ``learning_rate`` field (torch's ``lr``) with one optimizer's default.

    0 is allowed, as torch allows it: the run then measures the starting weights without
    moving them.
    """
    return Param("learning_rate", "number", default, low=0.0,
                 doc="Step size (torch's lr); 0 keeps the weights as they are.")


def weight_decay_param(default: float = 0.0) -> Param:
    """The ``weight_decay`` field: L2 added to the gradient unless the class decouples it."""
    return Param("weight_decay", "number", default, low=0.0,
                 doc="Weight decay factor (L2 penalty added to the gradient; 0: none).")


def eps_param(default: float) -> Param:
    """The ``eps`` field: added to the denominator for numerical stability."""
    return Param("eps", "number", default, low=0.0,
                 doc="Added to the denominator for numerical stability.")


BETA1 = Param("beta1", "number", 0.9, low=0.0, high=1.0, high_open=True,
              doc="Decay rate of the gradient's running mean (torch's betas[0]).")
BETA2 = Param("beta2", "number", 0.999, low=0.0, high=1.0, high_open=True,
              doc="Decay rate of the squared gradient's running mean (torch's betas[1]).")
MOMENTUM = Param("momentum", "number", 0.0, low=0.0, doc="Momentum factor (0: no momentum).")


class Optimizer(ABC):
    """Base class: holds ``params`` (updated in place), ``lr``, the step count and the state.

    Parameters
    ----------
    params : mapping name -> ndarray of any shape, float32 or float64; the arrays are updated
        in place, so they may be views into a network's flat parameter vector.
    lr : learning rate (torch's name for the ``learning_rate`` field); None: the class's
        default. Schedules assign ``optimizer.lr`` between epochs.
    **hyper : the other ``spec_params`` by JSON name; None or absent keeps torch's default.
        A value out of range raises the SpecError the spec parser gives (``optimizer.<name>``).

    Notes
    -----
    ``state[kind][name]`` holds one array per parameter and kind (``"exp_avg"``,
    ``"momentum_buffer"``, ...), created on the first :meth:`step` as PyTorch does.
    """

    name: ClassVar[str]
    #: the JSON fields of ``optimizer`` besides ``type``, in documentation order
    spec_params: ClassVar[tuple[Param, ...]]
    #: the state this optimizer may hold; ``load_state_dict`` refuses other kinds
    state_kinds: ClassVar[tuple[StateKind, ...]]
    #: True: the scratch pair is ``BLOCK`` elements (1-D) and ``_update`` walks :func:`blocks`
    blocked: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Array], lr: float | None = None,
                 **hyper: Any) -> None:
        if "learning_rate" in hyper:
            raise TypeError("pass the learning rate as lr (torch's name)")
        values = check_values(self.spec_params, {"learning_rate": lr, **hyper}, "optimizer")
        for key, message in self.conflicts(values).items():
            raise SpecError(f"optimizer.{key}", message)
        self._lr = float(values.pop("learning_rate"))
        for key, value in values.items():
            setattr(self, key, value)
        self.params: dict[str, Array] = dict(params)
        self.step_count = 0
        self.state: dict[str, dict[str, Array]] = {}
        self._scratch: dict[str, tuple[Array, Array]] = {}

    @classmethod
    def conflicts(cls, hyper: Mapping[str, Any]) -> dict[str, str]:
        """Rules between fields that no single range states: ``{field: message}``.

        The spec parser reports these beside range errors; the constructor raises the first.
        """
        return {}

    @classmethod
    def state_arrays(cls, hyper: Mapping[str, Any]) -> int:
        """How many parameter-sized arrays this optimizer keeps with these hyperparameters."""
        return sum(1 for kind in cls.state_kinds
                   if not kind.scalar and (kind.when is None or hyper[kind.when]))

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

    def _scalar(self, kind: str, name: str, fill: float) -> Array:
        """The ``kind`` 0-d ``SCALAR_DTYPE`` state of parameter ``name``, created as ``fill``."""
        bucket = self.state.setdefault(kind, {})
        value = bucket.get(name)
        if value is None:
            value = np.array(fill, dtype=SCALAR_DTYPE)
            bucket[name] = value
        return value

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
        kinds = {kind.name: kind for kind in self.state_kinds}
        restored: dict[str, dict[str, Array]] = {}
        for key, value in state.items():
            if key in ("step", "lr"):
                continue
            kind, sep, name = key.partition("/")
            if not sep or kind not in kinds or name not in self.params:
                raise CheckpointError(f"unexpected {self.name} state entry {key!r}")
            param = self.params[name]
            array = np.asarray(value)
            scalar = kinds[kind].scalar
            shape = () if scalar else param.shape
            if array.shape != shape:
                raise CheckpointError(
                    f"state {key!r} has shape {array.shape}, expected {shape}"
                )
            dtype = SCALAR_DTYPE if scalar else param.dtype
            restored.setdefault(kind, {})[name] = array.astype(dtype, copy=True)
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
