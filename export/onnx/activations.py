"""Each activation of ``core.activations`` as ONNX operators: name -> exporter.

An exporter takes the graph, the activation object (its parameters, e.g. ``alpha``) and the
name of its input value, and returns the name of its output. Every form is the operator that
defines the function, or an exact composition where ONNX's operator differs from core's
(torch's) definition; ``tests/export/test_onnx_activations.py`` holds each to core's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core.activations import Activation, Softplus
from export.errors import ExportError
from export.onnx.graph import Graph

ActivationExporter = Callable[[Graph, Activation, str], str]


def _linear(graph: Graph, activation: Activation, x: str) -> str:
    return x


def _relu(graph: Graph, activation: Activation, x: str) -> str:
    return graph.op("Relu", x)


def _leaky_relu(graph: Graph, activation: Activation, x: str) -> str:
    return graph.op("LeakyRelu", x, alpha=float(activation.alpha))  # type: ignore[attr-defined]


def expm1(graph: Graph, x: str) -> str:
    """exp(x) - 1 with full relative precision near 0 (ONNX has no Expm1).

    Kahan's identity: with u = exp(x), expm1(x) = (u - 1) * x / log(u), exactly x where u
    rounds to 1 and -1 where u - 1 does; within 3e-7 of NumPy's expm1 in float32 over
    [-120, 0], where the plain exp(x) - 1 of ONNX's ``Elu`` is 1 % off at x = -2e-6.
    """
    u = graph.op("Exp", x)
    one, minus_one = graph.constant("one", 1.0), graph.constant("minus_one", -1.0)
    u_minus_one = graph.op("Sub", u, one)
    kahan = graph.op("Mul", u_minus_one, graph.op("Div", x, graph.op("Log", u)))
    saturated = graph.op("Where", graph.op("Equal", u_minus_one, minus_one), minus_one, kahan)
    return graph.op("Where", graph.op("Equal", u, one), x, saturated)


def _elu(graph: Graph, activation: Activation, x: str) -> str:
    """x for x > 0, else alpha * expm1(x), as core (and torch) compute it."""
    alpha = graph.constant("alpha", activation.alpha)  # type: ignore[attr-defined]
    zero = graph.constant("zero", 0.0)
    negative = graph.op("Mul", expm1(graph, graph.op("Min", x, zero)), alpha)
    return graph.op("Where", graph.op("Greater", x, zero), x, negative)


def _gelu(graph: Graph, activation: Activation, x: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), at every opset.

    The ``Gelu`` operator (opset 20) computes the same formula; one form for every opset keeps
    one set of numbers to check. Core takes Phi from erfc, which keeps relative precision far
    in the negative tail; ONNX has no erfc (and onnxruntime no float64 Erf), so below x = -3
    this form is exact to 1e-7 absolute, not relative, as 1 + erf cancels: GELU(-5) =
    -1.433e-6 comes out as -1.490e-6.
    """
    scaled = graph.op("Mul", x, graph.constant("inv_sqrt2", 1.0 / math.sqrt(2.0)))
    one_plus = graph.op("Add", graph.op("Erf", scaled), graph.constant("one", 1.0))
    cdf = graph.op("Mul", one_plus, graph.constant("half", 0.5))
    return graph.op("Mul", x, cdf)


def sigmoid(graph: Graph, x: str) -> str:
    """1 / (1 + exp(-x)) as core's ``stable_sigmoid`` computes it, accurate in both tails.

    onnxruntime's ``Sigmoid`` kernel is accurate to about 1e-7 absolute, not relative: far
    out in the negative tail it answers 0 or a few times the true value, which SiLU then
    multiplies by x (1.5e-6 off at x = -17). exp(-|x|) never overflows, and dividing it by
    1 + exp(-|x|) keeps full relative precision for negative x, as in core.
    """
    e = graph.op("Exp", graph.op("Neg", graph.op("Abs", x)))
    zero, one = graph.constant("zero", 0.0), graph.constant("one", 1.0)
    numerator = graph.op("Where", graph.op("GreaterOrEqual", x, zero), one, e)
    return graph.op("Div", numerator, graph.op("Add", e, one))


def _sigmoid(graph: Graph, activation: Activation, x: str) -> str:
    return sigmoid(graph, x)


def _tanh(graph: Graph, activation: Activation, x: str) -> str:
    return graph.op("Tanh", x)


def softmax(graph: Graph, x: str) -> str:
    """Softmax over axis 1, the features of (N, F) or the channels of (N, C, H, W).

    From opset 13 on, ``Softmax(axis=1)`` normalises that one axis, as core does.
    """
    return graph.op("Softmax", x, axis=1)


def _softmax(graph: Graph, activation: Activation, x: str) -> str:
    return softmax(graph, x)


def _softplus(graph: Graph, activation: Activation, x: str) -> str:
    """torch's Softplus(beta=1, threshold=20): x itself above the threshold.

    ONNX's ``Softplus`` is log(1 + exp(x)) everywhere; the ``Where`` restores core's linear
    branch, so a runtime whose Softplus overflows for large x still answers x there.
    """
    above = graph.op("Greater", x, graph.constant("threshold", Softplus.threshold))
    return graph.op("Where", above, x, graph.op("Softplus", x))


def _silu(graph: Graph, activation: Activation, x: str) -> str:
    """x * sigmoid(x); the ``Swish`` operator only exists from opset 24."""
    return graph.op("Mul", x, sigmoid(graph, x))


ACTIVATION_EXPORTERS: dict[str, ActivationExporter] = {
    "linear": _linear,
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _gelu,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "softmax": _softmax,
    "softplus": _softplus,
    "silu": _silu,
}


def export_activation(graph: Graph, activation: Activation, x: str) -> str:
    """The ONNX form of ``activation`` applied to ``x``; ExportError("activation") if none."""
    exporter = ACTIVATION_EXPORTERS.get(activation.name)
    if exporter is None:
        raise ExportError("activation", f"activation {activation.name!r} has no ONNX form; "
                          f"exportable: {sorted(ACTIVATION_EXPORTERS)}")
    return exporter(graph, activation, x)

