"""Weight initializers with torch.nn.init's fan rules, drawn from the run's Generator.

Every initializer has the signature ``fn(shape, fan_in, fan_out, rng, dtype, **kw)``. The fans
are passed in (not derived from ``shape``) because a bias is initialised from its weight's
fans, and because our dense weight is stored (fan_in, fan_out), transposed relative to
torch's (out, in): the layer computes the fans with :func:`fan_in_fan_out` on torch's layout.
Draws happen directly in the run's dtype, so float32 runs never touch float64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from core.errors import SpecError

Array = NDArray[Any]
Shape = tuple[int, ...]
Initializer = Callable[..., Array]


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
             dtype: DTypeLike, value: float = 0.0) -> Array:
    return np.full(shape, value, dtype=dtype)


def normal(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
           dtype: DTypeLike, mean: float = 0.0, std: float = 1.0) -> Array:
    return _normal(shape, mean, std, rng, dtype)


def uniform(shape: Shape, fan_in: int, fan_out: int, rng: np.random.Generator,
            dtype: DTypeLike, a: float = 0.0, b: float = 1.0) -> Array:
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


def _fan_rule(name: str) -> Initializer:
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


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "normal": normal,
    "uniform": uniform,
    **{name: _fan_rule(name) for name in FAN_SCALES if name != "torch_default"},
    "torch_default": torch_default,
}

# Keyword arguments each parametrised initializer accepts from a spec.
INIT_KWARGS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "normal": ("mean", "std"),
    "uniform": ("a", "b"),
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
        for key in INIT_KWARGS.get(name, ()):
            value = _get(source, key)
            if value is not None:
                kwargs[key] = float(value)
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
