"""Weight initializers with torch.nn.init's fan rules, drawn from the run's Generator.

Every initializer is called as ``init(shape, fan_in, fan_out, rng, dtype, **params)``. The fans
are passed in (not derived from ``shape``) because a bias is initialised from its weight's
fans, and because our dense weight is stored (fan_in, fan_out), transposed relative to
torch's (out, in): the layer computes the fans with :func:`fan_in_fan_out` on torch's layout.
Draws happen directly in the run's dtype, so float32 runs never touch float64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from core.errors import SpecError
from core.spec.params import Param, defaults

Array = NDArray[Any]
Shape = tuple[int, ...]
Draw = Callable[..., Array]
# A rule between an initializer's own fields: (field, message) when broken, else None.
Check = Callable[[Mapping[str, float]], "tuple[str, str] | None"]


def fan_in_fan_out(torch_shape: Sequence[int]) -> tuple[int, int]:
    """torch.nn.init._calculate_fan_in_and_fan_out for a tensor of torch's layout.

    Parameters
    ----------
    torch_shape : (out, in, *kernel) -- for a dense layer (units, inputs)

    Returns
    -------
    (fan_in, fan_out) = (in * prod(kernel), out * prod(kernel))
    """
    if len(torch_shape) < 2:
        raise ValueError("fan in and fan out can not be computed for a tensor with fewer "
                         "than 2 dimensions")
    receptive = math.prod(torch_shape[2:])
    return int(torch_shape[1]) * receptive, int(torch_shape[0]) * receptive


def _uniform(shape: Shape, low: float, high: float, rng: np.random.Generator,
             dtype: DTypeLike) -> Array:
    # torch's uniform_(a, b) is a + (b - a) * U[0, 1); drawing U in the run dtype keeps it.
    u: Array = rng.random(shape, dtype=np.dtype(dtype).type)  # type: ignore[arg-type]
    u *= high - low
    u += low
    return u


def _normal(shape: Shape, mean: float, std: float, rng: np.random.Generator,
            dtype: DTypeLike) -> Array:
    z: Array = rng.standard_normal(shape, dtype=np.dtype(dtype).type)  # type: ignore[arg-type]
    z *= std
    z += mean
    return z


def zeros(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
          dtype: DTypeLike) -> Array:
    return np.zeros(shape, dtype=dtype)


def ones(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
         dtype: DTypeLike) -> Array:
    return np.ones(shape, dtype=dtype)


def constant(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
             dtype: DTypeLike, *, value: float) -> Array:
    return np.full(shape, value, dtype=dtype)


def normal(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
           dtype: DTypeLike, *, mean: float, std: float) -> Array:
    return _normal(shape, mean, std, rng, dtype)


def uniform(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
            dtype: DTypeLike, *, a: float, b: float) -> Array:
    return _uniform(shape, a, b, rng, dtype)


# The scale of each fan-based rule: the uniform bound or the normal std, exactly as
# torch.nn.init computes it (xavier gain 1, kaiming gain sqrt(2) in fan_in mode, lecun gain 1).
FAN_SCALES: dict[str, Callable[[int, int], float]] = {
    "glorot_uniform": lambda fi, fo: math.sqrt(3.0) * math.sqrt(2.0 / (fi + fo)),
    "glorot_normal": lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    "he_uniform": lambda fi, fo: math.sqrt(3.0) * (math.sqrt(2.0) / math.sqrt(fi)),
    "he_normal": lambda fi, fo: math.sqrt(2.0) / math.sqrt(fi),
    "lecun_uniform": lambda fi, fo: math.sqrt(3.0) * (1.0 / math.sqrt(fi)),
    "lecun_normal": lambda fi, fo: 1.0 / math.sqrt(fi),
    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / (1 + 5)), bound sqrt(3) * gain / sqrt(fan_in).
    "torch_default": lambda fi, fo: math.sqrt(3.0) * math.sqrt(2.0 / 6.0) / math.sqrt(fi),
}


def _fan_rule(name: str) -> Draw:
    scale_of = FAN_SCALES[name]
    draw_normal = name.endswith("_normal")

    def init(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
             dtype: DTypeLike) -> Array:
        scale = scale_of(fan_in, fan_out)
        if draw_normal:
            return _normal(shape, 0.0, scale, rng, dtype)
        return _uniform(shape, -scale, scale, rng, dtype)

    init.__name__ = name
    return init


def torch_default_bias_bound(fan_in: int) -> float:
    """nn.Linear / nn.Conv2d bias bound: 1/sqrt(fan_in), 0 when fan_in is 0."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def torch_default(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
                  dtype: DTypeLike) -> Array:
    """nn.Linear/nn.Conv2d reset_parameters: weight kaiming_uniform(a=sqrt(5)), bias U(±1/√fan_in).

    A 1-D ``shape`` is a bias; the fans are its weight's.
    """
    if len(shape) == 1:
        bound = torch_default_bias_bound(fan_in)
        return _uniform(shape, -bound, bound, rng, dtype)
    bound = FAN_SCALES["torch_default"](fan_in, fan_out)
    return _uniform(shape, -bound, bound, rng, dtype)


class Initializer:
    """A registry entry: how to draw the array, its spec fields and its docstring.

    ``spec_params`` are the JSON fields beside ``type`` (the keyword arguments of ``draw``);
    ``needs_matrix`` marks the fan-based rules, meaningless for a vector of per-feature
    parameters (batch_norm's gamma); ``check`` is a rule between its own fields.
    """

    def __init__(self, name: str, draw: Draw, doc: str, spec_params: tuple[Param, ...] = (),
                 *, needs_matrix: bool = False, check: Check | None = None) -> None:
        self.name = name
        self.draw = draw
        self.__doc__ = doc
        self.spec_params = spec_params
        self.needs_matrix = needs_matrix
        self.check = check

    def __call__(self, shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
                 dtype: DTypeLike, **params: float) -> Array:
        """Draw an array of ``shape``; a field not given takes its declared default."""
        return self.draw(shape, fan_in, fan_out, rng, dtype,
                         **{**defaults(self.spec_params), **params})


def _a_below_b(params: Mapping[str, float]) -> tuple[str, str] | None:
    a, b = params.get("a"), params.get("b")
    if a is not None and b is not None and a >= b:
        return "b", f"must be greater than a ({a!r}), got {b!r}"
    return None


_FAN_DOCS = {
    "glorot_uniform": "Xavier/Glorot uniform, U(±sqrt(6 / (fan_in + fan_out))).",
    "glorot_normal": "Xavier/Glorot normal, N(0, 2 / (fan_in + fan_out)).",
    "he_uniform": "Kaiming/He uniform for ReLU, U(±sqrt(6 / fan_in)).",
    "he_normal": "Kaiming/He normal for ReLU, N(0, 2 / fan_in).",
    "lecun_uniform": "LeCun uniform, U(±sqrt(3 / fan_in)).",
    "lecun_normal": "LeCun normal, N(0, 1 / fan_in).",
}

INITIALIZERS: dict[str, Initializer] = {
    entry.name: entry for entry in (
        Initializer("zeros", zeros, "All zeros."),
        Initializer("ones", ones, "All ones."),
        Initializer("constant", constant, "Every entry equal to ``value``.",
                    (Param("value", "number", 0.0, doc="The value of every entry."),)),
        Initializer("normal", normal, "Normal draws, N(mean, std²) (torch.nn.init.normal_).",
                    (Param("mean", "number", 0.0, doc="The mean."),
                     Param("std", "number", 1.0, low=0.0, low_open=True,
                           doc="The standard deviation."))),
        Initializer("uniform", uniform, "Uniform draws on [a, b) (torch.nn.init.uniform_).",
                    (Param("a", "number", 0.0, doc="The lower bound."),
                     Param("b", "number", 1.0, doc="The upper bound; greater than a.")),
                    check=_a_below_b),
        *(Initializer(name, _fan_rule(name), _FAN_DOCS[name], needs_matrix=True)
          for name in FAN_SCALES if name != "torch_default"),
        Initializer("torch_default", torch_default,
                    "PyTorch's nn.Linear/nn.Conv2d default: weight kaiming_uniform(a=√5), "
                    "bias U(±1/sqrt(fan_in))."),
    )
}

def resolve_initializer(spec: Any, default: str) -> tuple[str, dict[str, float]]:
    """Name and keyword arguments of an initializer given as a name, mapping or spec object.

    ``None`` gives ``default``. Raises ``SpecError`` for an unknown name.
    """
    if spec is None:
        return default, {}
    if isinstance(spec, str):
        name, source = spec, None
    else:
        source = spec
        name = _get(spec, "type") or _get(spec, "name")
    if name not in INITIALIZERS:
        raise SpecError("init", f"unknown initializer {name!r}; expected one of "
                        f"{sorted(INITIALIZERS)}")
    kwargs: dict[str, float] = {}
    if source is not None:
        for param in INITIALIZERS[name].spec_params:
            value = _get(source, param.name)
            if value is not None:
                kwargs[param.name] = float(value)
    return name, kwargs


def init_name(spec: Any) -> str | None:
    """The initializer name of a spec value (name, mapping or InitFn-like), None if unset."""
    if spec is None or isinstance(spec, str):
        return spec
    name = _get(spec, "type") or _get(spec, "name")
    return None if name is None else str(name)


def _get(source: Any, key: str) -> Any:
    if isinstance(source, dict):
        return source.get(key)
    return getattr(source, key, None)


def initialize(spec: Any, default: str, shape: Shape, fan_in: int, fan_out: int,
               rng: np.random.Generator, dtype: DTypeLike) -> Array:
    """Draw one parameter array of ``shape`` with the initializer ``spec`` names."""
    name, kwargs = resolve_initializer(spec, default)
    return INITIALIZERS[name](shape, fan_in, fan_out, rng, dtype, **kwargs)
