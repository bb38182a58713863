"""The data pipeline's setup cost and memory at two commits, measured alternately in one run.

Usage: ``.venv/bin/python benchmarks/bench_data_pipeline.py --base REV [--head REV]
[--rounds 3] [--quick] [--only epoch|rss] [--clock wall|cpu]``

Issue 18's figures, on the 784-256-128-10 MLP of ``peers/torch_mlp.py`` (Adam, batch 128)
over 60,000 rows of 784 features (179 MiB as float32), one BLAS thread, each measurement in a
fresh process on a ``git worktree`` of each commit (its code on ``PYTHONPATH``):

- ``epoch``: the wall time of a one-epoch ``core.train`` call over the median steady-state
  epoch (epochs 2 and 3 of a three-epoch call, ``history[i]["seconds"]``): what setup costs
  on top of an epoch (target: at most 1.15). Also the steady-state epoch itself, head over
  base (target: no slower).
- ``rss``: peak resident memory of a one-epoch ``core.train`` call beyond the process before
  the data existed (``VmHWM`` after the peak was reset, less ``VmRSS`` before X was made),
  over the data set plus the model's parameters, gradients and Adam's two moments (target:
  at most 1.3 for float32 X); and for the same pixels as uint8 X, over the float32 data
  set's size (target: at most 0.5).

Each call is made the way the worker makes it: with ``overwrite_inputs=True`` where the
commit has it (X handed over, so a standardization is applied to it once, in place).

Two spec variants each: ``plain`` (no validation split, no standardization: the data copied
the fewest times before issue 18) and ``defaults`` (validation_split 0.1, standardize on).
Results go to ``benchmarks/results/bench_data_pipeline-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASE = r"""
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

case, variant, dtype, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if sys.argv[5] == "cpu":
    time.perf_counter = time.process_time  # the loop's own timings too
from core.training import train
before_data = status("VmRSS")
def data():
    rng = np.random.default_rng(0)
    if dtype == "uint8":
        X = rng.integers(0, 256, (rows, 784), dtype=np.uint8)
    else:
        # Centred features, as peers/torch_mlp.py has them. Features in [0, 1) kill most of
        # the first layer's ReLUs within an epoch; Adam's first moments of the dead weights
        # then decay into subnormal floats and stay there (0.9 * k smallest subnormals rounds
        # back to k), and every later step does subnormal arithmetic: on an Intel Xeon
        # (Sapphire Rapids) epochs 2-3 took 2-3x epoch 1 (earlier runs on AMD EPYC showed no
        # such slowdown). That measures the CPU's subnormal penalty, not the data pipeline.
        X = rng.standard_normal((rows, 784), dtype=np.float32)
    return X, rng.integers(0, 10, rows)
X, y = data()
training = {"batch_size": 128, "seed": 0}
import inspect
# The worker's way: its arrays are handed over (standardized in place where they can be);
# each call then gets its own copy of the data, as each job gets its own read of it.
handed_over = "overwrite_inputs" in inspect.signature(train).parameters
kw = {"overwrite_inputs": True} if handed_over else {}
from core.spec import training as training_section
if any(p.name == "diagnostics" for p in training_section.TRAINING_PARAMS):
    # The pipeline alone: a commit with per-layer diagnostics (issue 17, on by default and
    # measured by bench_diagnostics.py) compares with them off against one without them.
    training["diagnostics"] = False
if variant == "plain":
    training.update(validation_split=0, standardize=False)
else:
    training.update(validation_split=0.1, standardize=True)
spec = {"model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"},
                             {"type": "dense", "units": 128, "activation": "relu"},
                             {"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "learning_rate": 0.001}, "training": training}
out = {"data_bytes": int(X.nbytes), "float32_data_bytes": rows * 784 * 4,
       "params": 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10}
with threadpool_limits(1):
    if case == "epoch":
        t0 = time.perf_counter()
        train({**spec, "training": {**training, "epochs": 1}}, X, y, **kw)
        out["one_epoch_call_s"] = time.perf_counter() - t0
        if handed_over:
            del X
            X, y = data()
        result = train({**spec, "training": {**training, "epochs": 3}}, X, y, **kw)
        out["steady_epoch_s"] = float(np.median([h["seconds"] for h in result.history[1:]]))
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        train({**spec, "training": {**training, "epochs": 1}}, X, y, **kw)
        out["rss_before_data"] = before_data
        out["peak_rss"] = status("VmHWM")
print(json.dumps(out))
"""


def worktree(rev: str, into: Path) -> Path:
    path = into / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True)
    return path


def measure(tree: Path, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CASE, *args], cwd=tree, env=env, check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def ratios(m: dict[str, float]) -> dict[str, float]:
    """The issue's figures from one measurement."""
    if "one_epoch_call_s" in m:
        return {"call_over_epoch": m["one_epoch_call_s"] / m["steady_epoch_s"],
                "steady_epoch_s": m["steady_epoch_s"]}
    model_state = 4 * m["params"] * 4  # float32 parameters, gradients, Adam's two moments
    beyond = m["peak_rss"] - m["rss_before_data"]
    return {"process_peak_mib": m["peak_rss"] / 2**20, "peak_mib": beyond / 2**20,
            "over_data_and_model": beyond / (m["data_bytes"] + model_state),
            "over_float32_data": beyond / m["float32_data_bytes"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--head", default="HEAD", help="the later commit (default HEAD)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="6,000 rows instead of 60,000")
    p.add_argument("--only", choices=("epoch", "rss"), help="one kind of case")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: the process's CPU time (user + system, page faults included) "
                   "instead of wall time, for a machine others are loading")
    args = p.parse_args()
    rows = "6000" if args.quick else "60000"
    cases = [("epoch", v, "float32") for v in ("plain", "defaults")] + [
        ("rss", v, d) for v in ("plain", "defaults") for d in ("float32", "uint8")]
    cases = [c for c in cases if args.only in (None, c[0])]
    table: dict[str, dict[str, list[dict[str, float]]]] = {
        "/".join(c): {"base": [], "head": []} for c in cases}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-data-") as tmp:
        trees = {"base": worktree(args.base, Path(tmp)), "head": worktree(args.head, Path(tmp))}
        try:
            for r in range(args.rounds):
                for case in cases:
                    for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
                        figures = ratios(measure(trees[side], *case, rows, args.clock))
                        table["/".join(case)][side].append(figures)
                        loads.append(os.getloadavg()[0])
                        shown = "  ".join(f"{k} {v:.3f}" for k, v in figures.items())
                        print(f"round {r + 1} {'/'.join(case):<24} {side:<5} {shown}  "
                              f"load {loads[-1]:.2f}", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(f"\nmedians over {args.rounds} rounds, one BLAS thread, load average "
          f"{min(loads):.2f}-{max(loads):.2f}")
    for name, sides in table.items():
        summary[name] = {side: {k: statistics.median(m[k] for m in runs) for k in runs[0]}
                         for side, runs in sides.items()}
        for side in ("base", "head"):
            shown = "  ".join(f"{k} {v:.3f}" for k, v in summary[name][side].items())
            print(f"  {name:<24} {side:<5} {shown}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = results / f"bench_data_pipeline-{stamp}.json"
    path.write_text(json.dumps({"base": args.base, "head": args.head, "rows": int(rows),
                                "clock": args.clock,
                                "loads": loads, "summary": summary, "rounds": table},
                               indent=2))
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
