"""Write tests/core/golden/layers_*.json: PyTorch's float64 answers for our layer tests.

Run with torch installed (the `bench` extra):
`.venv/bin/python benchmarks/golden/make_layer_golden.py [layers_NAME.json ...]`.
The tests read the JSON and never import torch. Every case stores its own inputs, so the
files are the whole contract: conv / pooling / batch norm / layer norm forward and gradients, every
activation and loss (value and gradient), and the exact bound or std torch.nn.init uses for
each initializer (captured from the uniform_/normal_ call torch itself makes).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parents[2] / "tests" / "core" / "golden"
torch.set_default_dtype(torch.float64)


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _l(t: torch.Tensor | np.ndarray) -> Any:
    return (t.detach().numpy() if isinstance(t, torch.Tensor) else t).tolist()


def conv_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(10)
    cases = []
    for kernel, stride, padding, shape, filters in [
        ((3, 3), 1, "valid", (2, 6, 7), 3),
        ((3, 3), 1, "same", (2, 5, 6), 4),
        ((4, 4), 1, "same", (1, 6, 5), 2),
        ((2, 3), 1, "same", (2, 5, 5), 3),
        ((3, 3), 2, 1, (2, 7, 6), 3),
        ((3, 3), 2, "valid", (3, 7, 8), 2),
        ((5, 5), 2, 2, (1, 9, 9), 2),
    ]:
        x = rng.standard_normal((2, *shape))
        w = rng.standard_normal((filters, shape[0], *kernel)) * 0.5
        b = rng.standard_normal(filters)
        xt, wt, bt = _t(x, True), _t(w, True), _t(b, True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch notes that even "same" kernels copy
            y = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
        dy = rng.standard_normal(tuple(y.shape))
        y.backward(_t(dy))
        cases.append({"kernel": list(kernel), "stride": stride, "padding": padding,
                      "x": _l(x), "weight": _l(w), "bias": _l(b), "dy": _l(dy), "y": _l(y),
                      "dx": _l(xt.grad), "dweight": _l(wt.grad), "dbias": _l(bt.grad)})
    return cases


def pool_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    cases = []
    for kind in ("max_pool2d", "avg_pool2d"):
        for k, stride, shape, ties in [(2, None, (2, 6, 6), False), (2, None, (2, 7, 5), True),
                                       (3, 2, (2, 7, 7), True), (2, 1, (1, 5, 6), True),
                                       (2, 3, (2, 8, 8), False)]:
            # Integer-valued inputs produce ties: torch routes a tie to the first maximum.
            x = rng.integers(0, 3, (2, *shape)).astype(float) if ties else \
                rng.standard_normal((2, *shape))
            xt = _t(x, True)
            fn = F.max_pool2d if kind == "max_pool2d" else F.avg_pool2d
            y = fn(xt, k, stride)
            dy = rng.standard_normal(tuple(y.shape))
            y.backward(_t(dy))
            cases.append({"type": kind, "pool_size": k, "stride": stride, "x": _l(x),
                          "dy": _l(dy), "y": _l(y), "dx": _l(xt.grad)})
    return cases


def batchnorm_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(12)
    cases = []
    for shape in [(6, 4), (5, 3, 4, 3)]:
        channels = shape[1]
        x = rng.standard_normal(shape) * 2.0 + 0.7
        gamma = rng.uniform(0.5, 1.5, channels)
        beta = rng.standard_normal(channels)
        module = torch.nn.BatchNorm1d(channels) if len(shape) == 2 else \
            torch.nn.BatchNorm2d(channels)
        with torch.no_grad():
            module.weight.copy_(_t(gamma))
            module.bias.copy_(_t(beta))
        xt = _t(x, True)
        module.train()
        y = module(xt)
        dy = rng.standard_normal(shape)
        y.backward(_t(dy))
        train = {"y": _l(y), "dx": _l(xt.grad), "dgamma": _l(module.weight.grad),
                 "dbeta": _l(module.bias.grad), "running_mean": _l(module.running_mean),
                 "running_var": _l(module.running_var)}
        module.eval()
        x_eval = rng.standard_normal(shape)
        xe = _t(x_eval, True)
        ye = module(xe)
        ye.backward(_t(dy))
        cases.append({"x": _l(x), "gamma": _l(gamma), "beta": _l(beta), "dy": _l(dy),
                      "train": train, "x_eval": _l(x_eval), "y_eval": _l(ye),
                      "dx_eval": _l(xe.grad)})
    return cases


def layernorm_cases() -> list[dict[str, Any]]:
    """torch.nn.LayerNorm over the whole sample: (N, F) and (N, C, H, W) inputs."""
    rng = np.random.default_rng(15)
    cases = []
    for shape, eps, affine in [((6, 5), 1e-5, True), ((4, 3, 3, 2), 1e-5, True),
                               ((5, 7), 1e-3, False), ((3, 1, 4, 4), 0.5, True)]:
        x = rng.standard_normal(shape) * 3.0 + 1.5
        module = torch.nn.LayerNorm(shape[1:], eps=eps, elementwise_affine=affine)
        case: dict[str, Any] = {"eps": eps, "elementwise_affine": affine, "x": _l(x)}
        if affine:
            gamma = rng.uniform(0.5, 1.5, shape[1:])
            beta = rng.standard_normal(shape[1:])
            with torch.no_grad():
                module.weight.copy_(_t(gamma))
                module.bias.copy_(_t(beta))
            case.update(gamma=_l(gamma), beta=_l(beta))
        xt = _t(x, True)
        y = module(xt)
        dy = rng.standard_normal(shape)
        y.backward(_t(dy))
        case.update(dy=_l(dy), y=_l(y), dx=_l(xt.grad))
        if affine:
            case.update(dgamma=_l(module.weight.grad), dbeta=_l(module.bias.grad))
        cases.append(case)
    return cases


def activation_cases() -> dict[str, Any]:
    x = np.concatenate([np.linspace(-8.0, 8.0, 33), [-30.0, -0.3, 0.0, 0.2, 19.5, 20.0, 25.0]])
    x = x.reshape(5, 8)
    fns = {
        "linear": lambda t: t,
        "relu": F.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
        "elu": lambda t: F.elu(t, 1.0),
        "gelu": lambda t: F.gelu(t, approximate="none"),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda t: F.softmax(t, dim=1),
        "softplus": lambda t: F.softplus(t, beta=1.0, threshold=20.0),
        "silu": F.silu,
    }
    dy = np.random.default_rng(13).standard_normal(x.shape)
    out: dict[str, Any] = {"x": _l(x), "dy": _l(dy), "cases": {}}
    for name, fn in fns.items():
        xt = _t(x, True)
        y = fn(xt)
        y.backward(_t(dy))
        out["cases"][name] = {"y": _l(y), "dx": _l(xt.grad)}
    return out


def loss_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(14)
    logits = rng.standard_normal((7, 4)) * 2.0
    labels = np.array([0, 3, 1, 1, 2, 3, 0])
    reg = rng.standard_normal((7, 3))
    reg_t = reg * 0.5 + rng.standard_normal((7, 3))
    reg_t[0, 0] = reg[0, 0]  # a zero difference: L1's gradient there is 0
    weights = [0.5, 2.0, 1.0, 3.0]
    specs: list[tuple[dict[str, Any], np.ndarray, np.ndarray, Any]] = [
        ({"type": "cross_entropy"}, logits, labels,
         lambda z, t: F.cross_entropy(z, t)),
        ({"type": "cross_entropy", "label_smoothing": 0.15}, logits, labels,
         lambda z, t: F.cross_entropy(z, t, label_smoothing=0.15)),
        ({"type": "cross_entropy", "class_weights": weights}, logits, labels,
         lambda z, t: F.cross_entropy(z, t, weight=_t(np.array(weights)))),
        ({"type": "cross_entropy", "class_weights": weights, "label_smoothing": 0.3}, logits,
         labels, lambda z, t: F.cross_entropy(z, t, weight=_t(np.array(weights)),
                                              label_smoothing=0.3)),
        ({"type": "binary_cross_entropy"}, logits[:, :1] * 4, (labels % 2).astype(float),
         lambda z, t: F.binary_cross_entropy_with_logits(z, t.reshape(z.shape))),
        ({"type": "binary_cross_entropy"}, logits, rng.uniform(0, 1, logits.shape),
         F.binary_cross_entropy_with_logits),
        ({"type": "mse"}, reg, reg_t, F.mse_loss),
        ({"type": "mse"}, reg[:, :1], reg_t[:, 0],
         lambda z, t: F.mse_loss(z, t.reshape(z.shape))),
        ({"type": "mae"}, reg, reg_t, F.l1_loss),
        ({"type": "huber"}, reg * 3, reg_t, lambda z, t: F.huber_loss(z, t, delta=1.0)),
        ({"type": "huber", "delta": 0.4}, reg * 3, reg_t,
         lambda z, t: F.huber_loss(z, t, delta=0.4)),
    ]
    cases = []
    for spec, outputs, targets, fn in specs:
        zt = _t(outputs, True)
        tt = torch.tensor(targets) if targets.dtype.kind == "i" else _t(targets)
        value = fn(zt, tt)
        value.backward()
        cases.append({"spec": spec, "outputs": _l(outputs), "targets": _l(targets),
                      "loss": float(value.detach()), "grad": _l(zt.grad)})
    return cases


class _Capture:
    """Records the (low, high) or (mean, std) of the uniform_/normal_ calls torch makes."""

    def __enter__(self) -> _Capture:
        self.calls: list[tuple[str, float, float]] = []
        self._saved = torch.Tensor.uniform_, torch.Tensor.normal_
        uniform, normal = self._saved
        calls = self.calls

        def uniform_(t: torch.Tensor, a: float = 0.0, b: float = 1.0, **kw: Any) -> Any:
            calls.append(("uniform_", float(a), float(b)))
            return uniform(t, a, b, **kw)

        def normal_(t: torch.Tensor, mean: float = 0.0, std: float = 1.0, **kw: Any) -> Any:
            calls.append(("normal_", float(mean), float(std)))
            return normal(t, mean, std, **kw)

        torch.Tensor.uniform_ = uniform_  # type: ignore[method-assign,assignment]
        torch.Tensor.normal_ = normal_  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        torch.Tensor.uniform_, torch.Tensor.normal_ = self._saved  # type: ignore[method-assign]


def init_cases() -> list[dict[str, Any]]:
    init = torch.nn.init
    rules = {
        "glorot_uniform": lambda t: init.xavier_uniform_(t),
        "glorot_normal": lambda t: init.xavier_normal_(t),
        "he_uniform": lambda t: init.kaiming_uniform_(t, nonlinearity="relu"),
        "he_normal": lambda t: init.kaiming_normal_(t, nonlinearity="relu"),
        "lecun_uniform": lambda t: init.kaiming_uniform_(t, nonlinearity="linear"),
        "lecun_normal": lambda t: init.kaiming_normal_(t, nonlinearity="linear"),
    }
    cases = []
    # torch layouts: Linear (out, in), Conv2d (out, in, kh, kw)
    for layer, torch_shape in [("dense", (256, 784)), ("dense", (10, 128)),
                               ("conv2d", (16, 1, 3, 3)), ("conv2d", (32, 16, 5, 3))]:
        fan_in, fan_out = init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
        entry: dict[str, Any] = {"layer": layer, "torch_shape": list(torch_shape),
                                 "fan_in": fan_in, "fan_out": fan_out, "rules": {}}
        for name, rule in rules.items():
            with _Capture() as cap:
                rule(torch.empty(torch_shape))
            kind, low, high = cap.calls[-1]
            entry["rules"][name] = {"kind": kind, "scale": high if kind == "normal_" else -low}
        module = torch.nn.Linear(torch_shape[1], torch_shape[0]) if layer == "dense" else \
            torch.nn.Conv2d(torch_shape[1], torch_shape[0], tuple(torch_shape[2:]))
        with _Capture() as cap:
            module.reset_parameters()
        (_, w_low, _), (_, b_low, _) = cap.calls[-2:]
        entry["torch_default"] = {"weight_bound": -w_low, "bias_bound": -b_low}
        cases.append(entry)
    return cases


def main(names: list[str]) -> None:
    """Write the named files (all when none are named).

    Name only the files you add or mean to change: torch's float64 kernels may differ in
    the last bit between machines (softmax, gelu), so regenerating everything can rewrite
    committed goldens with nothing changed.
    """
    OUT.mkdir(parents=True, exist_ok=True)
    payloads = {
        "layers_conv.json": conv_cases,
        "layers_pool.json": pool_cases,
        "layers_batchnorm.json": batchnorm_cases,
        "layers_layernorm.json": layernorm_cases,
        "layers_activations.json": activation_cases,
        "layers_losses.json": loss_cases,
        "layers_init.json": init_cases,
    }
    unknown = sorted(set(names) - set(payloads))
    if unknown:
        raise SystemExit(f"unknown golden files {unknown}; expected some of {sorted(payloads)}")
    for name in names or payloads:
        doc = {"torch": torch.__version__, "dtype": "float64", "cases": payloads[name]()}
        (OUT / name).write_text(json.dumps(doc, allow_nan=False) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
