"""Write the optimizer, schedule and clipping golden files from real PyTorch.

Run with the bench extra installed (torch 2.13 CPU)::

    .venv/bin/python benchmarks/golden/make_optim_golden.py

It writes ``tests/core/golden/optim_<name>.json``, and ``optim_torch_defaults.json`` (the
``defaults`` of a freshly built torch optimizer of each kind). The tests read those files without
importing torch (CI has none), so everything a test needs to replay a run is stored: initial
parameters, the gradient sequence, the hyperparameters under our spec names, and the
parameters PyTorch produced after every step. JSON floats are written with ``repr`` and read
back bit for bit.
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "core" / "golden"
STEPS = 20
EPOCHS = 30
SEED = 20240607
SHARED_STREAM = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

OPTIMIZER_CASES: dict[str, list[dict[str, Any]]] = {
    "sgd": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.5},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.1, "weight_decay": 0.05},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.7, "dampening": 0.3, "weight_decay": 0.02, "halve_at": 10},
    ],
    "adam": [
        {},
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.02, "beta1": 0.3, "beta2": 0.9, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.05, "amsgrad": True, "halve_at": 10},
    ],
    "adamw": [
        {},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "eps": 1e-4},
        {"lr": 0.02, "beta1": 0.5, "beta2": 0.95, "weight_decay": 0.0, "halve_at": 10},
    ],
    "rmsprop": [
        {},
        {"lr": 0.01, "centered": True},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.1},
        {"lr": 0.01, "alpha": 0.3, "eps": 1e-4, "weight_decay": 0.01, "halve_at": 10},
    ],
    "adagrad": [
        {},
        {"lr": 0.1, "lr_decay": 0.05},
        {"lr": 0.1, "initial_accumulator_value": 0.1},
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5,
         "eps": 1e-6, "halve_at": 10},
    ],
    "nadam": [
        {},
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.02, "beta1": 0.3, "beta2": 0.9, "eps": 1e-3, "momentum_decay": 0.1},
        {"lr": 0.01, "momentum_decay": 0.0},
        {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True,
         "momentum_decay": 0.01, "halve_at": 10},
    ],
}

TORCH_CLASSES = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad, "nadam": torch.optim.NAdam,
}

SCHEDULE_CASES: list[dict[str, Any]] = [
    {"type": "step", "step_size": 7, "gamma": 0.5},
    {"type": "step", "step_size": 10},
    {"type": "exponential", "gamma": 0.9},
    {"type": "cosine"},
    {"type": "cosine", "t_max": 10, "eta_min": 0.001},
    {"type": "cosine", "t_max": 7, "eta_min": 0.02, "warmup_epochs": 4},
    {"type": "cosine", "warmup_epochs": 5},
    {"type": "step", "step_size": 3, "gamma": 0.7, "warmup_epochs": 3},
    {"type": "exponential", "gamma": 0.8, "warmup_epochs": 1},
    {"type": "reduce_on_plateau", "patience": 2, "factor": 0.5},
    {"type": "reduce_on_plateau", "patience": 1, "factor": 0.3, "cooldown": 2, "min_lr": 0.005,
     "threshold": 0.01},
    {"type": "reduce_on_plateau", "mode": "max", "patience": 1, "factor": 0.5,
     "threshold_mode": "abs", "threshold": 0.02},
    {"type": "reduce_on_plateau", "patience": 0, "factor": 0.5, "warmup_epochs": 3},
]


def _torch_defaults(cls: Any) -> dict[str, Any]:
    """A torch class's constructor defaults under our names (``betas`` split in two).

    Adam's ``decoupled_weight_decay`` is our adamw type; NAdam's is one of its fields.
    """
    skip = {"maximize", "foreach", "capturable", "differentiable", "fused", "last_epoch"}
    if cls is not torch.optim.NAdam:
        skip.add("decoupled_weight_decay")
    out: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if param.default is inspect.Parameter.empty or name in skip:
            continue
        if name == "betas":
            out["beta1"], out["beta2"] = param.default
        else:
            out[name.lower()] = param.default
    return out


def _as_lists(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {name: array.tolist() for name, array in arrays.items()}


def _torch_optimizer(kind: str, params: list[torch.Tensor], hyper: dict[str, Any]) -> Any:
    kwargs = {k: v for k, v in hyper.items() if k not in ("beta1", "beta2", "halve_at")}
    if "beta1" in hyper or "beta2" in hyper:
        kwargs["betas"] = (hyper.get("beta1", 0.9), hyper.get("beta2", 0.999))
    # the single-tensor path is torch's reference implementation on CPU
    return TORCH_CLASSES[kind](params, foreach=False, **kwargs)


def optimizer_golden(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    init = {"0.weight": rng.normal(size=(3, 4)), "0.bias": rng.normal(size=(4,))}
    grads = [
        {name: rng.normal(size=a.shape) * (1.0 + 0.9 * math.sin(k)) for name, a in init.items()}
        for k in range(STEPS)
    ]
    cases = []
    for hyper in OPTIMIZER_CASES[kind]:
        for dtype in ("float64", "float32"):
            tdtype = getattr(torch, dtype)
            tparams = {n: torch.tensor(a, dtype=tdtype, requires_grad=True)
                       for n, a in init.items()}
            opt = _torch_optimizer(kind, list(tparams.values()), hyper)
            lrs, trajectory = [], []
            for k in range(STEPS):
                if hyper.get("halve_at") == k:
                    for group in opt.param_groups:
                        group["lr"] *= 0.5
                lrs.append(opt.param_groups[0]["lr"])
                for name, p in tparams.items():
                    p.grad = torch.tensor(grads[k][name], dtype=tdtype)
                opt.step()
                trajectory.append({n: p.detach().numpy().astype(np.float64).tolist()
                                   for n, p in tparams.items()})
            cases.append({"hyper": {k: v for k, v in hyper.items() if k != "halve_at"},
                          "dtype": dtype, "lrs": lrs, "trajectory": trajectory})
    return {"torch": torch.__version__, "defaults": _torch_defaults(TORCH_CLASSES[kind]),
            "steps": STEPS, "params": _as_lists(init),
            "grads": [_as_lists(g) for g in grads], "cases": cases}


def _metric_sequence(mode: str, rng: np.random.Generator) -> list[float]:
    # a noisy curve that improves, stalls, improves again: plateaus and cooldowns both occur
    base = np.concatenate([np.linspace(1.0, 0.5, 8), np.full(8, 0.5), np.linspace(0.5, 0.3, 6),
                           np.full(8, 0.3)])
    noise = rng.normal(scale=0.002, size=EPOCHS)
    values = base + noise
    return (1.0 - values if mode == "max" else values).tolist()


def _torch_main(case: dict[str, Any], opt: Any, main_epochs: int) -> Any:
    kind = case["type"]
    sched = torch.optim.lr_scheduler
    if kind == "step":
        return sched.StepLR(opt, step_size=case["step_size"], gamma=case.get("gamma", 0.1))
    if kind == "exponential":
        return sched.ExponentialLR(opt, gamma=case["gamma"])
    if kind == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=case.get("t_max", main_epochs),
                                       eta_min=case.get("eta_min", 0.0))
    keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr")
    return sched.ReduceLROnPlateau(opt, **{k: case[k] for k in keys if k in case})


def schedule_golden(rng: np.random.Generator) -> dict[str, Any]:
    base_lr = 0.1
    cases = []
    for case in SCHEDULE_CASES:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
        warmup = case.get("warmup_epochs", 0)
        plateau = case["type"] == "reduce_on_plateau"
        metrics = _metric_sequence(case.get("mode", "min"), rng) if plateau else None
        main_epochs = EPOCHS - warmup
        if warmup and not plateau:
            linear = torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
            main = _torch_main(case, opt, main_epochs)
            scheduler = torch.optim.lr_scheduler.SequentialLR(opt, [linear, main], [warmup])
        elif warmup:
            # SequentialLR refuses ReduceLROnPlateau: our composition is written out instead
            scheduler = torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
        else:
            scheduler = _torch_main(case, opt, main_epochs)
        lrs = []
        for epoch in range(EPOCHS):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if warmup and plateau:
                if epoch + 1 < warmup:
                    scheduler.step()
                elif epoch + 1 == warmup:
                    opt.param_groups[0]["lr"] = base_lr
                    scheduler = _torch_main(case, opt, main_epochs)
                else:
                    scheduler.step(metrics[epoch])
            elif plateau:
                scheduler.step(metrics[epoch])
            else:
                scheduler.step()
        cases.append({"spec": case, "base_lr": base_lr, "epochs": EPOCHS, "metrics": metrics,
                      "lrs": lrs})
    sched = torch.optim.lr_scheduler
    defaults = {"step": _torch_defaults(sched.StepLR),
                "exponential": _torch_defaults(sched.ExponentialLR),
                "cosine": _torch_defaults(sched.CosineAnnealingLR),
                "reduce_on_plateau": _torch_defaults(sched.ReduceLROnPlateau)}
    return {"torch": torch.__version__, "defaults": defaults, "cases": cases}


def clipping_golden(rng: np.random.Generator) -> dict[str, Any]:
    grads = {"0.weight": rng.normal(size=(5, 3)), "0.bias": rng.normal(size=(3,)),
             "1.weight": rng.normal(size=(3, 2)) * 3.0}
    cases = []
    for dtype in ("float64", "float32"):
        for norm_type in (2.0, 1.0, 3.0, math.inf):
            for max_norm in (0.5, 1e6):
                tgrads = [torch.tensor(g, dtype=getattr(torch, dtype)) for g in grads.values()]
                params = [torch.zeros_like(g, requires_grad=True) for g in tgrads]
                for p, g in zip(params, tgrads, strict=True):
                    p.grad = g
                total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type,
                                                       foreach=False)
                cases.append({
                    "dtype": dtype, "norm_type": "inf" if math.isinf(norm_type) else norm_type,
                    "max_norm": max_norm, "total_norm": float(total),
                    "clipped": {n: p.grad.numpy().astype(np.float64).tolist()
                                for n, p in zip(grads, params, strict=True)},
                })
    return {"torch": torch.__version__, "grads": _as_lists(grads), "cases": cases}


def torch_defaults_golden() -> dict[str, Any]:
    """Each torch optimizer's ``defaults`` as built with no arguments but its parameters."""
    out = {}
    for kind, cls in TORCH_CLASSES.items():
        defaults = cls([torch.zeros(1, requires_grad=True)]).defaults
        out[kind] = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    return {"torch": torch.__version__, "optimizers": out}


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    # These files were first drawn from one stream in this order; keep it so their bytes stay.
    outputs: dict[str, Any] = {kind: optimizer_golden(kind, rng) for kind in SHARED_STREAM}
    outputs["schedules"] = schedule_golden(rng)
    outputs["clipping"] = clipping_golden(rng)
    for kind in OPTIMIZER_CASES.keys() - set(SHARED_STREAM):
        # an optimizer added later draws from a stream of its own
        outputs[kind] = optimizer_golden(kind, np.random.default_rng([SEED, *kind.encode()]))
    outputs["torch_defaults"] = torch_defaults_golden()
    for name, data in outputs.items():
        path = OUT / f"optim_{name}.json"
        path.write_text(json.dumps(data, indent=None) + "\n")
        print(f"wrote {path.relative_to(OUT.parents[2])} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
