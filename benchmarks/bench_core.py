"""Core training speed against its peers, measured alternately in one run.

Usage: ``.venv/bin/python benchmarks/bench_core.py [--rounds 3] [--quick] [--only a,b,c,d]
[--threads 1] [--clock wall|cpu]``

Cases (issue 2, "Performance"), each timed as the peers in ``benchmarks/peers/`` time
themselves: one warm-up epoch, then one timed epoch.

- a: MLP 784-256-128-10, batch 128, Adam, float32, 60,000 random rows, against
  ``torch_mlp.py`` and ``sklearn_mlp.py`` (target: >= 1.5x each);
- b: MLP 784-1024-1024-10, batch 256, Adam, against the float32 GEMM peak of
  ``gemm_peak.py``; FLOPs counted as ``torch_mlp.py`` does, 6 x rows x sum(fan_in x fan_out)
  (target: >= 75% of the peak);
- c: the LeNet-like CNN of ``torch_cnn.py`` (SGD momentum, batch 64, 10,000 rows of 28x28)
  (target: >= 1.0x PyTorch, issue 18);
- d: a CNN with a second 16->32 convolution on a 4x4 map (8x8x1 digits-shaped images,
  conv 16 same, pool, conv 32 same, pool, dense 32, dense 10; Adam, batch 32, 1,437 rows:
  the training split of the builtin digits) against ``torch_cnn_digits.py`` (issue 18's
  "new user" CNN).

Each case also reports GFLOP/s, counting 6 x multiply-adds of the forward pass per row as
``torch_mlp.py`` counts an MLP (forward 2, backward 4; the first layer's unneeded input
gradient counted too, as for the MLP).

Each round runs ours, then every peer for the case (peers as subprocesses, exactly the peer
scripts); the table reports medians over rounds and the ratios of the medians. Results go
to ``benchmarks/results/bench_core-<UTC time>.json``.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set on this machine for old OpenBLAS builds and pin
a slower kernel (the development machine's environment sets them): the script re-executes
itself once without them (so its peers run without them too) and prints the kernel OpenBLAS
then reports.
``--threads N`` pins every library of every process to N threads (a machine shared with
other jobs makes multi-threaded BLAS timings erratic; one thread each is the steady view).
``--clock cpu`` times the measured epoch of ours and of every peer by process CPU time
instead of wall time (the peer scripts still run unchanged: a wrapper points their
``time.perf_counter`` at ``time.process_time``). With one thread each, CPU time is what an
epoch costs without the waits of a process descheduled on a shared machine; cache and
memory-bandwidth contention still show.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("WEIGHTSMITH_PEERS", ROOT / "benchmarks" / "peers"))
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks.threads import pin_threads  # noqa: E402 (the repository is on the path first)


def mlp_spec(hidden: list[int], batch: int, epochs: int) -> dict[str, Any]:
    layers: list[dict[str, Any]] = [
        {"type": "dense", "units": h, "activation": "relu"} for h in hidden]
    layers.append({"type": "dense", "units": 10})
    return {
        "model": {"layers": layers},
        "optimizer": {"type": "adam", "learning_rate": 1e-3},
        "training": {"epochs": epochs, "batch_size": batch, "validation_split": 0.0,
                     "standardize": False, "dtype": "float32", "seed": 0},
    }


def cnn_spec(batch: int, epochs: int) -> dict[str, Any]:
    conv = {"type": "conv2d", "kernel_size": 3, "padding": 1, "activation": "relu"}
    return {
        "model": {"layers": [
            {**conv, "filters": 16}, {"type": "max_pool2d", "pool_size": 2},
            {**conv, "filters": 32}, {"type": "max_pool2d", "pool_size": 2},
            {"type": "flatten"}, {"type": "dense", "units": 10}]},
        "optimizer": {"type": "sgd", "learning_rate": 0.01, "momentum": 0.9},
        "training": {"epochs": epochs, "batch_size": batch, "validation_split": 0.0,
                     "standardize": False, "dtype": "float32", "seed": 0},
    }


def digits_cnn_spec(batch: int, epochs: int) -> dict[str, Any]:
    """Issue 18's new-user CNN: examples/digits_cnn.json with a second 16->32 convolution."""
    conv = {"type": "conv2d", "kernel_size": 3, "padding": "same", "activation": "relu"}
    return {
        "model": {"layers": [
            {**conv, "filters": 16}, {"type": "max_pool2d", "pool_size": 2},
            {**conv, "filters": 32}, {"type": "max_pool2d", "pool_size": 2},
            {"type": "flatten"}, {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dense", "units": 10}]},
        "optimizer": {"type": "adam", "learning_rate": 0.003},
        "training": {"epochs": epochs, "batch_size": batch, "validation_split": 0.0,
                     "standardize": False, "dtype": "float32", "seed": 0},
    }


# Forward multiply-adds per row: conv F*C*kh*kw*oh*ow, dense fan_in*fan_out.
CNN_MACS = 16 * 1 * 9 * 28 * 28 + 32 * 16 * 9 * 14 * 14 + 32 * 7 * 7 * 10
DIGITS_CNN_MACS = 16 * 1 * 9 * 8 * 8 + 32 * 16 * 9 * 4 * 4 + 32 * 2 * 2 * 32 + 32 * 10
CPU_CLOCK = False  # --clock cpu


def ours(spec: dict[str, Any], X: np.ndarray, y: np.ndarray) -> float:
    """Seconds of our second epoch (the first is the warm-up, as the peers do)."""
    from core.training import train

    wall = time.perf_counter
    if CPU_CLOCK:
        time.perf_counter = time.process_time  # the epoch's own timer reads CPU time
    try:
        result = train(spec, X, y)
    finally:
        time.perf_counter = wall
    return float(result.history[-1]["seconds"])


# Runs a peer script unchanged, its epoch timer reading process CPU time (--clock cpu).
CPU_WRAPPER = ("import runpy, sys, time; time.perf_counter = time.process_time; "
               "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def peer(script: str, *args: object) -> float:
    """Seconds per epoch that a peer script prints (``... 1.234s/epoch ...``)."""
    cmd = [sys.executable, *(("-c", CPU_WRAPPER) if CPU_CLOCK else ()), str(PEERS / script),
           *map(str, args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"([0-9.]+)s/epoch", out)
    if match is None:
        raise RuntimeError(f"{script} printed no s/epoch: {out!r}")
    return float(match.group(1))


def gemm_peak() -> float:
    """The best float32 GFLOP/s gemm_peak.py prints."""
    cmd = [sys.executable, str(PEERS / "gemm_peak.py")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return max(float(v) for v in re.findall(r"float32 n=\d+: ([0-9.]+) GFLOP/s", out))


def mlp_flops(rows: int, hidden: list[int]) -> float:
    dims = [784, *hidden, 10]
    return 6.0 * rows * sum(a * b for a, b in itertools.pairwise(dims))


def run(rounds: int, quick: bool, only: set[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    n_a = 12000 if quick else 60000
    n_b = 6000 if quick else 20000
    n_c = 2000 if quick else 10000
    n_d = 1437
    times: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)
        print(f"  {key:<22} {seconds:8.3f} s/epoch", flush=True)

    X_a = rng.standard_normal((n_a, 784), dtype=np.float32)
    y_a = rng.integers(0, 10, n_a)
    X_c = rng.standard_normal((n_c, 1, 28, 28), dtype=np.float32)
    y_c = rng.integers(0, 10, n_c)
    X_d = rng.standard_normal((n_d, 1, 8, 8), dtype=np.float32)
    y_d = rng.integers(0, 10, n_d)
    peak: list[float] = []
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", flush=True)
        if "a" in only:
            record("a.ours", ours(mlp_spec([256, 128], 128, 2), X_a, y_a))
            record("a.torch", peer("torch_mlp.py", n_a, 128, 256, 128))
            record("a.sklearn", peer("sklearn_mlp.py", n_a, 128, 256, 128))
        if "b" in only:
            record("b.ours", ours(mlp_spec([1024, 1024], 256, 2), X_a[:n_b], y_a[:n_b]))
            record("b.torch", peer("torch_mlp.py", n_b, 256, 1024, 1024))
            peak.append(gemm_peak())
            print(f"  {'b.gemm_peak':<22} {peak[-1]:8.1f} GFLOP/s", flush=True)
        if "c" in only:
            record("c.ours", ours(cnn_spec(64, 2), X_c, y_c))
            record("c.torch", peer("torch_cnn.py", n_c, 64))
        if "d" in only:
            record("d.ours", ours(digits_cnn_spec(32, 2), X_d, y_d))
            record("d.torch", peer("torch_cnn_digits.py", n_d, 32))
    rows = {"a": n_a, "b": n_b, "c": n_c, "d": n_d}
    summary: dict[str, Any] = {"rows": rows, "rounds": rounds, "seconds": times,
                               "clock": "cpu" if CPU_CLOCK else "wall",
                               "gemm_peak_gflops": peak}
    # Medians are the headline; the best round of each side is the view least disturbed by
    # other jobs on a shared machine (timeit's argument for the minimum).
    for name, stat in (("median", statistics.median), ("best", min)):
        secs = {k: stat(v) for k, v in times.items()}
        peak_stat = (max(peak) if name == "best" else statistics.median(peak)) if peak else 0.0
        summary[name] = figures(secs, peak_stat, rows)
    return summary


def figures(secs: dict[str, float], peak: float, rows: dict[str, int]) -> dict[str, Any]:
    """Ratios (and GFLOP/s for b) from per-side seconds of one statistic."""
    out: dict[str, Any] = {"seconds": secs}
    if "a.ours" in secs:
        out["a_speedup_vs_torch"] = secs["a.torch"] / secs["a.ours"]
        out["a_speedup_vs_sklearn"] = secs["a.sklearn"] / secs["a.ours"]
    if "b.ours" in secs:
        flops = mlp_flops(rows["b"], [1024, 1024])
        out["b_gflops_ours"] = flops / secs["b.ours"] / 1e9
        out["b_gflops_torch"] = flops / secs["b.torch"] / 1e9
        out["b_gemm_peak_gflops"] = peak
        out["b_fraction_of_peak"] = out["b_gflops_ours"] / peak
    for case, macs in (("c", CNN_MACS), ("d", DIGITS_CNN_MACS)):
        if f"{case}.ours" in secs:
            flops = 6.0 * macs * rows[case]
            out[f"{case}_speedup_vs_torch"] = secs[f"{case}.torch"] / secs[f"{case}.ours"]
            out[f"{case}_gflops_ours"] = flops / secs[f"{case}.ours"] / 1e9
            out[f"{case}_gflops_torch"] = flops / secs[f"{case}.torch"] / 1e9
    return out


def table(fig: dict[str, Any], title: str) -> str:
    sec = fig["seconds"]
    lines = [f"{title:<44}{'ours s':>9}{'peer s':>9}{'ratio':>8}{'target':>9}"]

    def row(name: str, ours_s: float, peer_s: float, ratio: float, target: str) -> None:
        lines.append(f"{name:<44}{ours_s:>9.3f}{peer_s:>9.3f}{ratio:>7.2f}x{target:>9}")

    if "a_speedup_vs_torch" in fig:
        row("a MLP 784-256-128-10 b128 Adam vs torch", sec["a.ours"], sec["a.torch"],
            fig["a_speedup_vs_torch"], ">=1.5x")
        row("a MLP 784-256-128-10 b128 Adam vs sklearn", sec["a.ours"], sec["a.sklearn"],
            fig["a_speedup_vs_sklearn"], ">=1.5x")
    if "b_fraction_of_peak" in fig:
        lines.append(
            f"{'b MLP 784-1024-1024-10 b256 Adam':<44}{fig['b_gflops_ours']:>9.1f}"
            f"{fig['b_gemm_peak_gflops']:>9.1f}{fig['b_fraction_of_peak']:>7.0%} "
            f"{'>=75%':>8}   (GFLOP/s ours, GEMM peak; torch "
            f"{fig['b_gflops_torch']:.1f})")
    if "c_speedup_vs_torch" in fig:
        row("c CNN of torch_cnn.py b64 SGD momentum", sec["c.ours"], sec["c.torch"],
            fig["c_speedup_vs_torch"], ">=1.0x")
    if "d_speedup_vs_torch" in fig:
        row("d digits CNN 16->32 on 4x4, b32 Adam", sec["d.ours"], sec["d.torch"],
            fig["d_speedup_vs_torch"], "")
    for case in "cd":
        if f"{case}_gflops_ours" in fig:
            lines.append(f"  {case}: {fig[f'{case}_gflops_ours']:.1f} GFLOP/s ours, "
                         f"{fig[f'{case}_gflops_torch']:.1f} torch (6 x forward MACs per row)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer rows, for a smoke run")
    parser.add_argument("--only", default="a,b,c,d", help="comma-separated cases")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time the measured epochs by wall clock or process CPU time")
    parser.add_argument("--threads", type=int, default=None,
                        help="pin BLAS/OpenMP threads for ours and every peer (default: "
                             "the libraries' own choice, one per core)")
    args = parser.parse_args()
    pin_threads(args.threads)
    from threadpoolctl import threadpool_info

    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
            for i in threadpool_info()]
    print(f"numpy {np.__version__}; BLAS (api, kernel, threads): {blas}", flush=True)
    global CPU_CLOCK
    CPU_CLOCK = args.clock == "cpu"
    started = time.time()
    summary = run(args.rounds, args.quick, set(args.only.split(",")))
    summary["blas"] = blas
    summary["threads"] = args.threads
    summary["wall_s"] = time.time() - started
    print()
    print(table(summary["median"], f"median of {args.rounds} rounds ({args.clock} clock)"))
    print()
    print(table(summary["best"], f"best of {args.rounds} rounds ({args.clock} clock)"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"bench_core-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
