"""Optimizers: hand-worked torch.optim formulas, torch 2.13 golden runs, state round trips."""

from __future__ import annotations

import io
import itertools
import json
import math
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.errors import CheckpointError, SpecError
from core.optimizers import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    NAdam,
    Optimizer,
    make_optimizer,
)
from core.spec import Spec

GOLDEN = Path(__file__).parent / "golden"
Params = dict[str, np.ndarray]


def _problem(seed: int = 0, steps: int = 3) -> tuple[Params, list[Params]]:
    rng = np.random.default_rng(seed)
    params = {"0.weight": rng.normal(size=(2, 3)), "0.bias": rng.normal(size=(3,))}
    grads = [{n: rng.normal(size=p.shape) * (1 + k) for n, p in params.items()}
             for k in range(steps)]
    return params, grads


# ---- torch's formulas written out, one parameter at a time, out of place ------------------


def ref_sgd(p: np.ndarray, gs: list[np.ndarray], lr: float, momentum: float = 0.0,
            dampening: float = 0.0, nesterov: bool = False,
            weight_decay: float = 0.0) -> list[np.ndarray]:
    out, buf = [], None
    for g in gs:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p)
    return out


def ref_adam(p: np.ndarray, gs: list[np.ndarray], lr: float, beta1: float = 0.9,
             beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
             amsgrad: bool = False, decoupled: bool = False) -> list[np.ndarray]:
    out = []
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gs, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        vmax = np.maximum(vmax, v)
        second = vmax if amsgrad else v
        denom = np.sqrt(second) / math.sqrt(1 - beta2**t) + eps
        p = p - lr / (1 - beta1**t) * m / denom
        out.append(p)
    return out


def ref_rmsprop(p: np.ndarray, gs: list[np.ndarray], lr: float, alpha: float = 0.99,
                eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                centered: bool = False) -> list[np.ndarray]:
    out = []
    sq, ga, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in gs:
        g = g + weight_decay * p
        sq = alpha * sq + (1 - alpha) * g * g
        if centered:
            ga = ga + (1 - alpha) * (g - ga)
            avg = np.sqrt(sq - ga * ga) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


def ref_adagrad(p: np.ndarray, gs: list[np.ndarray], lr: float, lr_decay: float = 0.0,
                weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                eps: float = 1e-10) -> list[np.ndarray]:
    out = []
    acc = np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(gs, start=1):
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        acc = acc + g * g
        p = p - clr * g / (np.sqrt(acc) + eps)
        out.append(p)
    return out


def ref_nadam(p: np.ndarray, gs: list[np.ndarray], lr: float, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
              momentum_decay: float = 4e-3,
              decoupled_weight_decay: bool = False) -> list[np.ndarray]:
    out = []
    m, v = np.zeros_like(p), np.zeros_like(p)
    mu_product = np.float32(1.0)  # torch's scalar state is float32 under its default dtype
    for t, g in enumerate(gs, start=1):
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = np.float32(mu_product * np.float32(mu))
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        denom = np.sqrt(v / (1 - beta2**t)) + eps
        p = p - lr * (1 - mu) / (1 - float(mu_product)) * g / denom
        p = p - lr * mu_next / (1 - float(mu_product) * mu_next) * m / denom
        out.append(p)
    return out


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


SGD_GRID = [h for h in _grid(momentum=[0.0, 0.9], dampening=[0.0, 0.5], nesterov=[False, True],
                             weight_decay=[0.0, 0.1])
            if not (h["nesterov"] and (h["momentum"] == 0.0 or h["dampening"] != 0.0))]
ADAM_GRID = _grid(weight_decay=[0.0, 0.1], amsgrad=[False, True], beta1=[0.9, 0.3])
RMSPROP_GRID = _grid(centered=[False, True], momentum=[0.0, 0.9], weight_decay=[0.0, 0.1],
                     alpha=[0.99, 0.3])
ADAGRAD_GRID = _grid(lr_decay=[0.0, 0.1], weight_decay=[0.0, 0.1],
                     initial_accumulator_value=[0.0, 0.5])
NADAM_GRID = _grid(weight_decay=[0.0, 0.1], decoupled_weight_decay=[False, True],
                   beta1=[0.9, 0.3], momentum_decay=[4e-3, 0.0, 0.5])

HAND_CASES = (
    [("sgd", ref_sgd, 0.1, h, {}) for h in SGD_GRID]
    + [("adam", ref_adam, 0.01, h, {}) for h in ADAM_GRID]
    + [("adamw", ref_adam, 0.01, h, {"decoupled": True}) for h in ADAM_GRID]
    + [("rmsprop", ref_rmsprop, 0.01, h, {}) for h in RMSPROP_GRID]
    + [("adagrad", ref_adagrad, 0.1, h, {}) for h in ADAGRAD_GRID]
    + [("nadam", ref_nadam, 0.01, h, {}) for h in NADAM_GRID]
)


@pytest.mark.parametrize(("kind", "ref", "lr", "hyper", "extra"), HAND_CASES,
                         ids=[f"{c[0]}-{c[3]}" for c in HAND_CASES])
def test_three_steps_match_torch_formulas(kind: str, ref: Any, lr: float,
                                          hyper: dict[str, Any], extra: dict[str, Any]) -> None:
    params, grads = _problem()
    expected = {n: ref(p.copy(), [g[n] for g in grads], lr, **hyper, **extra)
                for n, p in params.items()}
    opt = OPTIMIZERS[kind](params, lr=lr, **hyper)
    for k, g in enumerate(grads):
        opt.step(g)
        for n, p in params.items():
            np.testing.assert_allclose(p, expected[n][k], rtol=1e-12, atol=1e-14)


def test_sgd_momentum_by_hand() -> None:
    p = {"w": np.array([1.0])}
    opt = SGD(p, lr=0.1, momentum=0.9)
    seen = []
    for g in (0.5, 0.25, 1.0):  # buf: 0.5, 0.9*0.5+0.25=0.7, 0.9*0.7+1=1.63
        opt.step({"w": np.array([g])})
        seen.append(p["w"][0])
    np.testing.assert_allclose(seen, [0.95, 0.88, 0.717], rtol=1e-14)


def test_adam_first_step_is_lr_times_sign_by_hand() -> None:
    # m1 = (1-b1) g, v1 = (1-b2) g^2: bias corrections leave p - lr * g / (|g| + eps)
    p = {"w": np.array([0.0, 1.0, -2.0])}
    g = np.array([4.0, -1e-3, 0.0])
    Adam(p, lr=0.5).step({"w": g})
    np.testing.assert_allclose(p["w"], [0.0, 1.0, -2.0] - 0.5 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)


def test_adamw_decays_weights_even_with_zero_gradient() -> None:
    p = {"w": np.array([2.0, -4.0])}
    AdamW(p, lr=0.1).step({"w": np.zeros(2)})  # default weight_decay 0.01: factor 0.999
    np.testing.assert_allclose(p["w"], [1.998, -3.996], rtol=1e-15)


def test_adagrad_lr_decay_by_hand() -> None:
    p = {"w": np.array([1.0])}
    opt = Adagrad(p, lr=1.0, lr_decay=1.0, eps=0.0)
    opt.step({"w": np.array([3.0])})  # clr 1, sum 9: 1 - 3/3 = 0
    opt.step({"w": np.array([4.0])})  # clr 1/2, sum 25: 0 - 0.5*4/5 = -0.4
    np.testing.assert_allclose(p["w"], [-0.4], rtol=1e-15)


def test_nadam_two_steps_by_hand() -> None:
    # momentum_decay 0: mu = beta1 / 2 = 0.25 every step, so mu_product is 0.25, then
    # 0.0625, exact in float32. Step 1, g = 2: m = 1, v = 1, bias correction 0.25: denom 2;
    # p = 1 - 0.1 * 0.75 / 0.75 * 2/2 - 0.1 * 0.25 / (1 - 0.0625) * 1/2 = 0.9 - 1/75.
    # Step 2, g = 1: m = 1, v = 1, bias correction 7/16: denom 4/sqrt(7);
    # p -= 0.1 * 0.75 / 0.9375 * sqrt(7)/4 + 0.1 * 0.25 / (1 - 0.015625) * sqrt(7)/4
    p = {"w": np.array([1.0])}
    opt = NAdam(p, lr=0.1, beta1=0.5, beta2=0.75, eps=0.0, momentum_decay=0.0)
    opt.step({"w": np.array([2.0])})
    np.testing.assert_allclose(p["w"], [0.9 - 1 / 75], rtol=1e-15)
    opt.step({"w": np.array([1.0])})
    np.testing.assert_allclose(p["w"], [0.9 - 1 / 75 - math.sqrt(7) * (1 / 50 + 2 / 315)],
                               rtol=1e-15)
    assert opt.state_dict()["mu_product/w"] == np.float32(0.0625)


def test_nadam_first_step_with_torchs_momentum_schedule_by_hand() -> None:
    # m1 = 0.1 g and v1 = 0.001 g^2, so denom = |g| + eps; mu_t = 0.9 (1 - 0.5 * 0.96^(0.004 t))
    p = {"w": np.array([0.0, 1.0, -2.0])}
    g = np.array([4.0, -1e-3, 0.5])
    NAdam(p, lr=0.5).step({"w": g})
    mu1 = 0.9 * (1 - 0.5 * 0.96 ** 0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96 ** 0.008)
    product = float(np.float32(mu1))
    step = 0.5 * g / (np.abs(g) + 1e-8) * ((1 - mu1) / (1 - product)
                                           + 0.1 * mu2 / (1 - product * mu2))
    np.testing.assert_allclose(p["w"], [0.0, 1.0, -2.0] - step, rtol=1e-14)


def test_nadam_decoupled_weight_decay_shrinks_weights_with_zero_gradient() -> None:
    p = {"w": np.array([2.0, -4.0])}
    NAdam(p, lr=0.1, weight_decay=0.01, decoupled_weight_decay=True).step({"w": np.zeros(2)})
    np.testing.assert_allclose(p["w"], [1.998, -3.996], rtol=1e-15)
    coupled = {"w": np.array([2.0, -4.0])}  # L2 instead: the decay moves it as a gradient
    NAdam(coupled, lr=0.1, weight_decay=0.01).step({"w": np.zeros(2)})
    assert not np.allclose(coupled["w"], [1.998, -3.996], rtol=1e-6)


def test_nadam_keeps_mu_product_as_torchs_float32_scalar_for_float64_parameters() -> None:
    params, grads = _problem(steps=5)
    opt = NAdam(params)
    product = np.float32(1.0)
    for t, g in enumerate(grads, start=1):
        opt.step(g)
        product = np.float32(product * np.float32(0.9 * (1 - 0.5 * 0.96 ** (0.004 * t))))
    state = opt.state_dict()
    for name in params:
        mu_product = state[f"mu_product/{name}"]
        assert isinstance(mu_product, np.ndarray) and mu_product.shape == ()
        assert mu_product.dtype == np.float32 and mu_product == product
        assert state[f"exp_avg/{name}"].dtype == np.float64  # type: ignore[union-attr]


# ---- golden files written by benchmarks/golden/make_optim_golden.py with torch 2.13 --------


def _golden_cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for kind in OPTIMIZERS:
        data = json.loads((GOLDEN / f"optim_{kind}.json").read_text())
        out += [(kind, data, case) for case in data["cases"]]
    return out


GOLDEN_CASES = _golden_cases()


@pytest.mark.parametrize(("kind", "data", "case"), GOLDEN_CASES,
                         ids=[f"{k}-{c['dtype']}-{c['hyper']}" for k, _, c in GOLDEN_CASES])
def test_twenty_steps_match_torch(kind: str, data: dict[str, Any], case: dict[str, Any]) -> None:
    dtype = np.dtype(case["dtype"])
    params = {n: np.array(v, dtype=dtype) for n, v in data["params"].items()}
    opt = OPTIMIZERS[kind](params, **case["hyper"])
    tol = {"rtol": 1e-10, "atol": 0.0} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-6}
    for k in range(data["steps"]):
        opt.lr = case["lrs"][k]
        opt.step({n: np.array(v, dtype=dtype) for n, v in data["grads"][k].items()})
        for n, p in params.items():
            assert p.dtype == dtype
            np.testing.assert_allclose(p, case["trajectory"][k][n], **tol)


@pytest.mark.parametrize("case", json.loads((GOLDEN / "optim_nadam.json").read_text())["cases"],
                         ids=lambda c: f"{c['dtype']}-{c['hyper']}")
def test_nadam_follows_torch_to_the_last_bits(case: dict[str, Any]) -> None:
    """Tighter than the shared golden test: NAdam keeps torch's order of operations, so a
    float64 run is within an ulp or two of torch's (a float64 mu_product: 1e-9 off)."""
    data = json.loads((GOLDEN / "optim_nadam.json").read_text())
    dtype = np.dtype(case["dtype"])
    params = {n: np.array(v, dtype=dtype) for n, v in data["params"].items()}
    opt = NAdam(params, **case["hyper"])
    rtol = 1e-15 if dtype == np.float64 else 1e-6
    for k in range(data["steps"]):
        opt.lr = case["lrs"][k]
        opt.step({n: np.array(v, dtype=dtype) for n, v in data["grads"][k].items()})
        for n, p in params.items():
            np.testing.assert_allclose(p, case["trajectory"][k][n], rtol=rtol, atol=0.0)


def _declared(cls: type[Optimizer]) -> dict[str, Any]:
    """The declared defaults under torch's names (``lr``; ``betas`` as a pair)."""
    out = {("lr" if p.name == "learning_rate" else p.name): p.default for p in cls.spec_params}
    if "beta1" in out:
        out["betas"] = [out.pop("beta1"), out.pop("beta2")]
    return out


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_declared_defaults_are_torchs_constructor_defaults(kind: str) -> None:
    torch_defaults = json.loads((GOLDEN / f"optim_{kind}.json").read_text())["defaults"]
    ours = {("lr" if p.name == "learning_rate" else p.name): p.default
            for p in OPTIMIZERS[kind].spec_params}
    assert ours == torch_defaults


TORCH_DEFAULTS = json.loads((GOLDEN / "optim_torch_defaults.json").read_text())
# torch's switches of where and how a step runs, not what it computes
EXECUTION_FLAGS = {"maximize", "foreach", "capturable", "differentiable", "fused"}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_declared_defaults_equal_a_fresh_torch_optimizers_defaults(kind: str) -> None:
    """Every hyperparameter torch's optimizer has, with its value, and nothing else: the
    ``defaults`` of a freshly built torch optimizer, saved by make_optim_golden.py."""
    torch_defaults = {k: v for k, v in TORCH_DEFAULTS["optimizers"][kind].items()
                      if k not in EXECUTION_FLAGS}
    cls = OPTIMIZERS[kind]
    if "amsgrad" in torch_defaults:
        # torch's Adam and AdamW differ by this flag; here each is its own type
        assert torch_defaults.pop("decoupled_weight_decay") == cls.decoupled_weight_decay
    assert _declared(cls) == torch_defaults
    assert set(TORCH_DEFAULTS["optimizers"]) == set(OPTIMIZERS)


def test_golden_files_cover_every_optimizer_option() -> None:
    options = {kind: set() for kind in OPTIMIZERS}
    for kind, _, case in GOLDEN_CASES:
        options[kind] |= {k for k, v in case["hyper"].items() if v}
    for kind, cls in OPTIMIZERS.items():
        assert {p.name for p in cls.spec_params} - {"learning_rate"} <= options[kind], kind


# ---- state dicts, dtypes, allocation ------------------------------------------------------

ROUND_TRIP = [
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1}),
    ("nadam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True,
               "momentum_decay": 0.05}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("kind", "hyper"), ROUND_TRIP, ids=[k for k, _ in ROUND_TRIP])
def test_state_dict_through_npz_continues_bit_for_bit(kind: str, hyper: dict[str, Any],
                                                      dtype: str) -> None:
    params, grads = _problem(seed=3, steps=10)
    params = {n: p.astype(dtype) for n, p in params.items()}
    grads = [{n: g.astype(dtype) for n, g in gs.items()} for gs in grads]
    straight = {n: p.copy() for n, p in params.items()}
    opt = OPTIMIZERS[kind](straight, **hyper)
    for g in grads:
        opt.step(g)

    first = {n: p.copy() for n, p in params.items()}
    opt_a = OPTIMIZERS[kind](first, **hyper)
    for g in grads[:5]:
        opt_a.step(g)
    opt_a.lr = hyper["lr"]  # a schedule may have written it; the state carries it
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in opt_a.state_dict().items()})
    with np.load(io.BytesIO(buffer.getvalue()), allow_pickle=False) as saved:
        state = dict(saved)
    resumed = {n: p.copy() for n, p in first.items()}
    opt_b = OPTIMIZERS[kind](resumed, **hyper)
    opt_b.load_state_dict(state)
    assert opt_b.step_count == 5
    for g in grads[5:]:
        opt_b.step(g)
    for n in params:
        assert resumed[n].dtype == np.dtype(dtype)
        assert resumed[n].tobytes() == straight[n].tobytes()


def test_state_is_built_lazily_and_named_per_parameter() -> None:
    params, grads = _problem()
    opt = Adam(params, amsgrad=True)
    assert opt.state_dict() == {"step": 0, "lr": 1e-3}
    opt.step(grads[0])
    keys = set(opt.state_dict())
    assert keys == {"step", "lr"} | {f"{kind}/{n}" for kind in
                                     ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
                                     for n in params}
    # torch's Adagrad fills its accumulator at construction
    assert set(Adagrad(params, initial_accumulator_value=0.5).state_dict()) == {
        "step", "lr", "sum/0.weight", "sum/0.bias"}


@pytest.mark.parametrize(("kind", "hyper"), ROUND_TRIP, ids=[k for k, _ in ROUND_TRIP])
def test_float32_stays_float32_and_grads_are_untouched(kind: str, hyper: dict[str, Any]) -> None:
    params, grads = _problem()
    p32 = {n: p.astype(np.float32) for n, p in params.items()}
    g32 = [{n: g.astype(np.float32) for n, g in gs.items()} for gs in grads]
    before = [{n: g.copy() for n, g in gs.items()} for gs in g32]
    opt = OPTIMIZERS[kind](p32, **hyper)
    for g in g32:
        opt.step(g)
    assert all(p.dtype == np.float32 for p in p32.values())
    assert all(v.dtype == np.float32 for v in opt.state_dict().values()
               if isinstance(v, np.ndarray))
    for g, b in zip(g32, before, strict=True):
        for n in g:
            assert np.array_equal(g[n], b[n])


@pytest.mark.parametrize(("kind", "hyper"), ROUND_TRIP, ids=[k for k, _ in ROUND_TRIP])
def test_steady_state_step_allocates_no_full_size_temporary(kind: str,
                                                            hyper: dict[str, Any]) -> None:
    n = 250_000
    rng = np.random.default_rng(0)
    flat = {"all": rng.normal(size=n).astype(np.float32)}
    grad = {"all": rng.normal(size=n).astype(np.float32)}
    opt: Optimizer = OPTIMIZERS[kind](flat, **hyper)
    opt.step(grad)  # builds state and scratch
    tracemalloc.start()
    try:
        opt.step(grad)
        opt.step(grad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * 4 // 10, f"peak {peak} bytes for a {n * 4}-byte parameter vector"


def test_make_optimizer_reads_spec_names_and_keeps_torch_defaults() -> None:
    params, _ = _problem()
    spec = SimpleNamespace(type="adam", learning_rate=0.02, beta1=0.8, beta2=0.99, eps=None,
                           weight_decay=0.0, amsgrad=True)
    opt = make_optimizer(spec, params)
    assert isinstance(opt, Adam) and not isinstance(opt, AdamW)
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.amsgrad) == (0.02, 0.8, 0.99, 1e-8, True)
    adamw = make_optimizer(SimpleNamespace(type="adamw", learning_rate=None), params)
    assert (type(adamw), adamw.lr, adamw.weight_decay) == (AdamW, 1e-3, 0.01)
    adagrad = make_optimizer(SimpleNamespace(type="adagrad", learning_rate=0.1), params)
    assert (adagrad.lr, adagrad.eps) == (0.1, 1e-10)
    with pytest.raises(SpecError, match=r"optimizer\.type: unknown optimizer 'lbfgs'"):
        make_optimizer(SimpleNamespace(type="lbfgs"), params)


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_the_spec_reads_each_optimizers_declaration(kind: str) -> None:
    cls = OPTIMIZERS[kind]
    spec = Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 2}]},
                           "optimizer": {"type": kind}})
    assert spec.optimizer.to_dict() == {"type": kind,
                                        **{p.name: p.default for p in cls.spec_params}}
    opt = make_optimizer(spec.optimizer, {"all": np.zeros(3)})
    assert type(opt) is cls
    assert opt.lr == spec.optimizer.learning_rate
    assert cls.spec_params[0].name == "learning_rate"  # first in the docs; it is opt.lr
    for p in cls.spec_params[1:]:
        assert getattr(opt, p.name) == getattr(spec.optimizer, p.name), p.name


@pytest.mark.parametrize(("kind", "hyper", "arrays"), [
    ("sgd", {}, 0), ("sgd", {"momentum": 0.9}, 1), ("adam", {}, 2),
    ("adam", {"amsgrad": True}, 3), ("adamw", {"amsgrad": True}, 3), ("rmsprop", {}, 1),
    ("rmsprop", {"centered": True, "momentum": 0.5}, 3), ("adagrad", {}, 1), ("nadam", {}, 2),
])
def test_declared_state_counts_the_arrays_a_step_builds(kind: str, hyper: dict[str, Any],
                                                        arrays: int) -> None:
    params, grads = _problem()
    opt = OPTIMIZERS[kind](params, **hyper)
    opt.step(grads[0])
    built = {key.partition("/")[0] for key, value in opt.state_dict().items()
             if key.endswith("/0.bias") and np.shape(value) == params["0.bias"].shape}
    assert len(built) == arrays
    full = {p.name: p.default for p in OPTIMIZERS[kind].spec_params} | hyper
    assert OPTIMIZERS[kind].state_arrays(full) == arrays


def test_a_zero_learning_rate_is_accepted_and_moves_nothing() -> None:
    params, grads = _problem()
    before = {n: p.copy() for n, p in params.items()}
    opt = Adam(params, lr=0.0)
    for g in grads:
        opt.step(g)
    for n, p in params.items():
        np.testing.assert_array_equal(p, before[n])
    spec = Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 2}]},
                           "optimizer": {"type": "sgd", "learning_rate": 0}})
    assert spec.optimizer.learning_rate == 0.0


def test_make_optimizer_from_a_parsed_spec_with_an_alias() -> None:
    spec = Spec.from_dict({"dataset": "builtin:xor",
                           "model": {"layers": [{"type": "dense", "units": 2}]},
                           "optimizer": {"type": "nesterov", "learning_rate": 0.05}})
    opt = make_optimizer(spec.optimizer, {"all": np.zeros(4)})
    assert isinstance(opt, SGD)
    assert (opt.lr, opt.momentum, opt.nesterov, opt.dampening) == (0.05, 0.9, True, 0.0)


@pytest.mark.parametrize(("build", "message"), [
    (lambda p: SGD(p, lr=-1.0),
     r"optimizer\.learning_rate: must be a non-negative number, got -1\.0"),
    (lambda p: SGD(p, lr=0.1, nesterov=True), r"optimizer\.nesterov: "),
    (lambda p: Adam(p, beta1=1.0), r"optimizer\.beta1: must be a number in \[0, 1\), got 1\.0"),
    (lambda p: Adagrad(p, lr_decay=-0.1),
     r"optimizer\.lr_decay: must be a non-negative number, got -0\.1"),
    (lambda p: SGD(p, dampening=1.5), r"optimizer\.dampening: must be a number in \[0, 1\]"),
])
def test_bad_hyperparameters_are_refused(build: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build(_problem()[0])


def test_a_misspelt_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'betas'"):
        Adam(_problem()[0], betas=(0.9, 0.99))


def test_mismatched_gradients_and_states_are_refused() -> None:
    params, grads = _problem()
    opt = Adam(params)
    with pytest.raises(ValueError, match="shape"):
        opt.step({"0.weight": np.zeros(6), "0.bias": grads[0]["0.bias"]})
    with pytest.raises(CheckpointError, match=r"adam state entry 'momentum_buffer/0\.bias'"):
        opt.load_state_dict({"step": 1, "lr": 0.1, "momentum_buffer/0.bias": np.zeros(3)})
    with pytest.raises(CheckpointError, match="shape"):
        opt.load_state_dict({"step": 1, "lr": 0.1, "exp_avg/0.bias": np.zeros(4)})


# ---- blocked updates (Adam walks a large parameter in L2-sized slices) --------------------

BLOCKED = [(k, h) for k, h in [*ROUND_TRIP, ("adam", {"lr": 0.01, "weight_decay": 0.1}),
                                ("adamw", {"lr": 0.01, "amsgrad": True})]
           if OPTIMIZERS[k].blocked]


def test_adam_and_adamw_are_blocked() -> None:
    assert {k for k, _ in BLOCKED} >= {"adam", "adamw"}


@pytest.mark.parametrize(("kind", "hyper"), BLOCKED, ids=[f"{k}-{h}" for k, h in BLOCKED])
def test_blocked_step_is_bitwise_independent_of_the_block_size(
        kind: str, hyper: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import core.optimizers.base as base

    n = 2 * base.BLOCK + 12_345  # two full blocks and a ragged tail
    rng = np.random.default_rng(5)
    start = rng.normal(size=n).astype(np.float32)
    grads = [rng.normal(size=n).astype(np.float32) for _ in range(4)]

    def run() -> tuple[np.ndarray, dict[str, Any]]:
        p = start.copy()
        opt = OPTIMIZERS[kind]({"all": p}, **hyper)
        for g in grads:
            opt.step({"all": g})
        return p, opt.state_dict()

    blocked, blocked_state = run()
    assert OPTIMIZERS[kind]({"all": start.copy()}, **hyper)._scratch_for(
        "all", start)[0].shape == (base.BLOCK,)
    monkeypatch.setattr(base, "BLOCK", 10 * n)  # one slice: the whole array
    whole, whole_state = run()
    assert not np.array_equal(blocked, start)
    assert blocked.tobytes() == whole.tobytes()
    assert set(blocked_state) == set(whole_state)
    for key, value in blocked_state.items():
        assert np.asarray(value).tobytes() == np.asarray(whole_state[key]).tobytes(), key


@pytest.mark.parametrize("decoupled", [False, True])
def test_blocked_adam_matches_torch_formulas_across_block_edges(decoupled: bool) -> None:
    import core.optimizers.base as base

    rng = np.random.default_rng(6)
    shape = (3, base.BLOCK // 2 + 7)  # 2-D, 1.5 blocks: flat views of a C-contiguous array
    p = rng.normal(size=shape)
    gs = [rng.normal(size=shape) * (1 + k) for k in range(3)]
    hyper = {"weight_decay": 0.1, "amsgrad": True, "beta1": 0.3}
    expected = ref_adam(p.copy(), gs, 0.01, decoupled=decoupled, **hyper)
    opt = (AdamW if decoupled else Adam)({"w": p}, lr=0.01, **hyper)
    for k, g in enumerate(gs):
        opt.step({"w": g})
        np.testing.assert_allclose(p, expected[k], rtol=1e-12, atol=1e-14)


def test_blocked_adam_updates_a_non_contiguous_view_in_place() -> None:
    rng = np.random.default_rng(7)
    backing = rng.normal(size=(4, 6))
    view = backing[:, ::2]  # every other column: not C-contiguous, must be written through
    untouched = backing[:, 1::2].copy()
    gs = [np.asfortranarray(rng.normal(size=view.shape)) for _ in range(3)]
    expected = ref_adam(view.copy(), gs, 0.05, weight_decay=0.1)
    opt = Adam({"v": view}, lr=0.05, weight_decay=0.1)
    for k, g in enumerate(gs):
        opt.step({"v": g})
        np.testing.assert_allclose(backing[:, ::2], expected[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(backing[:, 1::2], untouched)


@pytest.mark.parametrize(("kind", "ref", "hyper"), [
    ("rmsprop", ref_rmsprop, {"centered": True, "momentum": 0.9, "weight_decay": 0.1}),
    ("rmsprop", ref_rmsprop, {"alpha": 0.3}),
    ("adagrad", ref_adagrad, {"lr_decay": 0.1, "weight_decay": 0.1,
                              "initial_accumulator_value": 0.5}),
])
def test_blocked_rmsprop_and_adagrad_match_torch_formulas_across_block_edges(
        kind: str, ref: Any, hyper: dict[str, Any]) -> None:
    import core.optimizers.base as base

    rng = np.random.default_rng(8)
    p = rng.normal(size=base.BLOCK + 999)
    gs = [rng.normal(size=p.shape) * (1 + k) for k in range(3)]
    expected = ref(p.copy(), gs, 0.01, **hyper)
    opt = OPTIMIZERS[kind]({"all": p}, lr=0.01, **hyper)
    for k, g in enumerate(gs):
        opt.step({"all": g})
        np.testing.assert_allclose(p, expected[k], rtol=1e-12, atol=1e-14)
