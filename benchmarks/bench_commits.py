"""The core's training speed at two commits, measured alternately in one run.

Usage: ``.venv/bin/python benchmarks/bench_commits.py --base REV [--head REV] [--rounds 3]``

A refactor must not cost speed: each round times, for each commit in turn (a ``git worktree``
of it, its code on ``PYTHONPATH``), one warm-up epoch and then one timed epoch of

- ``mlp``: the 784-256-128-10 MLP of ``peers/torch_mlp.py`` (Adam, batch 128, float32) on
  20,000 random rows;
- ``cnn``: the LeNet-like CNN of ``peers/torch_cnn.py`` (SGD momentum, batch 64) on 2,000
  random 28x28 rows;

in a fresh process with one BLAS thread. The table reports the median seconds per epoch over
rounds and head/base: a ratio near 1.0 (within the rounds' spread) is no regression. Results go
to ``benchmarks/results/bench_commits-<UTC time>.json``.
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
from core.training import train

case = sys.argv[1]
rng = np.random.default_rng(0)
if case == "mlp":
    X = rng.random((20000, 784), dtype=np.float32); y = rng.integers(0, 10, 20000)
    spec = {"model": {"layers": [{"type": "dense", "units": 256, "activation": "relu"},
                                 {"type": "dense", "units": 128, "activation": "relu"},
                                 {"type": "dense", "units": 10}]},
            "optimizer": {"type": "adam", "learning_rate": 0.001},
            "training": {"epochs": 2, "batch_size": 128, "validation_split": 0,
                         "standardize": False}}
else:
    X = rng.random((2000, 1, 28, 28), dtype=np.float32); y = rng.integers(0, 10, 2000)
    spec = {"model": {"layers": [
                {"type": "conv2d", "filters": 6, "kernel_size": 5, "activation": "relu"},
                {"type": "max_pool2d", "pool_size": 2},
                {"type": "conv2d", "filters": 16, "kernel_size": 5, "activation": "relu"},
                {"type": "max_pool2d", "pool_size": 2}, {"type": "flatten"},
                {"type": "dense", "units": 120, "activation": "relu"},
                {"type": "dense", "units": 84, "activation": "relu"},
                {"type": "dense", "units": 10}]},
            "optimizer": {"type": "sgd", "learning_rate": 0.01, "momentum": 0.9},
            "training": {"epochs": 2, "batch_size": 64, "validation_split": 0,
                         "standardize": False}}
with threadpool_limits(1):
    result = train(spec, X, y)
print(json.dumps({"seconds": result.history[-1]["seconds"]}))
"""


def worktree(rev: str, into: Path) -> Path:
    path = into / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True)
    return path


def epoch_seconds(tree: Path, case: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CASE, case], cwd=tree, env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--head", default="HEAD", help="the later commit (default HEAD)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cases", default="mlp,cnn")
    args = p.parse_args()
    cases = args.cases.split(",")
    times: dict[str, dict[str, list[float]]] = {c: {"base": [], "head": []} for c in cases}
    with tempfile.TemporaryDirectory(prefix="ws-bench-commits-") as tmp:
        trees = {"base": worktree(args.base, Path(tmp)), "head": worktree(args.head, Path(tmp))}
        try:
            for r in range(args.rounds):
                for case in cases:
                    for side in (("base", "head") if r % 2 == 0 else ("head", "base")):
                        seconds = epoch_seconds(trees[side], case)
                        times[case][side].append(seconds)
                        print(f"round {r + 1} {case:<4} {side:<5} {seconds:8.3f} s/epoch  "
                              f"load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], capture_output=True)
    summary = {}
    print(f"\nmedian seconds per epoch over {args.rounds} rounds, one BLAS thread")
    for case in cases:
        base, head = (statistics.median(times[case][s]) for s in ("base", "head"))
        summary[case] = {"base": base, "head": head, "head_over_base": head / base,
                         "rounds": times[case]}
        print(f"  {case:<4} base {base:7.3f}  head {head:7.3f}  head/base {head / base:5.3f}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = results / f"bench_commits-{stamp}.json"
    path.write_text(json.dumps({"base": args.base, "head": args.head, **summary}, indent=2))
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
