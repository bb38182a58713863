"""What per-layer diagnostics cost: case a of ``bench_core.py`` with ``training.diagnostics``
on and off, alternately in one run.

Usage: ``.venv/bin/python benchmarks/bench_diagnostics.py [--rounds 7] [--quick] [--threads 1]``

The MLP 784-256-128-10, batch 128, Adam, float32, 60,000 random rows (469 batches an epoch).
Each round trains two epochs with diagnostics off, then on (the order flips every round); the
time of the second epoch is measured between the two ``on_epoch`` calls (the process's CPU
time by default: with one BLAS thread it is the epoch's own cost, and it stays steady when
other jobs share the cores, which real time does not; ``--clock wall``), so it includes all
of an epoch: the shuffle and gather, the epoch-start copy of the weights, every batch (the
per-layer squared gradient norms) and the epoch-end norms. The table reports medians, the
best rounds and the overhead ``on / off - 1`` (issue 17's budget: at most 5%), and two views
that a busy machine disturbs less: the hooks' own work timed alone, and their time inside the
real "on" epochs (each hook call timed) as a share of those epochs. Results go to
``benchmarks/results/bench_diagnostics-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks.bench_core import mlp_spec  # noqa: E402
from benchmarks.threads import pin_threads  # noqa: E402

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class Timed:
    """LayerDiagnostics' three hooks, each call timed on ``clock``: their time inside a real
    epoch (the in-situ cost), at the price of two clock reads per call."""

    def __init__(self, clock: str) -> None:
        self.now = CLOCKS[clock]
        self.seconds = 0.0

    def __enter__(self) -> Timed:
        from core.diagnostics import LayerDiagnostics

        self.saved = {name: getattr(LayerDiagnostics, name)
                      for name in ("begin_epoch", "add_batch", "end_epoch")}
        for name, method in self.saved.items():
            setattr(LayerDiagnostics, name, self._timed(method))
        return self

    def __exit__(self, *exc: object) -> None:
        from core.diagnostics import LayerDiagnostics

        for name, method in self.saved.items():
            setattr(LayerDiagnostics, name, method)

    def _timed(self, method: Any) -> Any:
        def timed(diagnostics: Any) -> Any:
            t0 = self.now()
            try:
                return method(diagnostics)
            finally:
                self.seconds += self.now() - t0
        return timed


def epoch_seconds(diagnostics: bool, X: np.ndarray, y: np.ndarray,
                  clock: str) -> tuple[float, float]:
    """The second epoch's time, from the end of the first to the end of the second, and the
    time its diagnostics hooks took (0 when off)."""
    from core.training import train

    spec = mlp_spec([256, 128], 128, 2)
    spec["training"]["diagnostics"] = diagnostics
    ends: list[tuple[float, float]] = []
    now = CLOCKS[clock]
    with Timed(clock) as hooks:
        result = train(spec, X, y,
                       on_epoch=lambda report: ends.append((now(), hooks.seconds)))
    assert (result.stop_reason, len(ends)) == ("epochs_done", 2)
    return ends[1][0] - ends[0][0], ends[1][1] - ends[0][1]


def hook_seconds(X: np.ndarray, y: np.ndarray, clock: str, repeats: int = 5) -> float:
    """The diagnostics' own work for one epoch of the same run, timed alone: the epoch-start
    copy, one ``add_batch`` per batch and the epoch-end norms (best of ``repeats``). Divided
    by the epoch without diagnostics, it bounds their cost without the epoch's noise."""
    from core.diagnostics import LayerDiagnostics
    from core.training_run import RunSetup, as_spec

    spec = mlp_spec([256, 128], 128, 1)
    run = RunSetup(as_spec(spec), X[:256], y[:256])
    run.network.flat_grads[...] = 1e-3  # any gradient: the cost does not depend on it
    diagnostics = LayerDiagnostics(run.network)
    batches = -(-X.shape[0] // 128)
    now = CLOCKS[clock]
    best = float("inf")
    for _ in range(repeats):
        t0 = now()
        diagnostics.begin_epoch()
        for _ in range(batches):
            diagnostics.add_batch()
        diagnostics.end_epoch()
        best = min(best, now() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="12,000 rows, for a smoke run")
    parser.add_argument("--threads", type=int, default=None,
                        help="pin BLAS/OpenMP threads (1 is the steady view on a shared "
                             "machine)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu",
                        help="cpu: the process's CPU time (one BLAS thread: what the epoch "
                             "itself costs, steadier on a busy machine); wall: real time")
    parser.add_argument("--only", default="", help="accepted for run_all.py; ignored")
    args = parser.parse_args()
    pin_threads(args.threads)
    from threadpoolctl import threadpool_info

    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads"))
            for i in threadpool_info()]
    print(f"numpy {np.__version__}; BLAS (api, kernel, threads): {blas}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rng = np.random.default_rng(0)
    n = 12000 if args.quick else 60000
    X = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    times: dict[str, list[float]] = {"off": [], "on": []}
    in_situ: list[float] = []  # the hooks' share of each "on" epoch
    for r in range(args.rounds):
        order = ("off", "on") if r % 2 == 0 else ("on", "off")
        for side in order:
            seconds, hooks = epoch_seconds(side == "on", X, y, args.clock)
            times[side].append(seconds)
            if side == "on":
                in_situ.append(hooks / seconds)
        print(f"round {r + 1}/{args.rounds}: off {times['off'][-1]:.3f} s, "
              f"on {times['on'][-1]:.3f} s (hooks {in_situ[-1]:.2%} of it)", flush=True)
    hooks = hook_seconds(X, y, args.clock)
    median = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    paired = [b / a - 1.0 for a, b in zip(times["off"], times["on"], strict=True)]
    summary: dict[str, Any] = {
        "rows": n, "rounds": args.rounds, "threads": args.threads, "blas": blas,
        "clock": args.clock,
        "seconds": times, "median": median, "best": best,
        "overhead_median": median["on"] / median["off"] - 1.0,
        "overhead_best": best["on"] / best["off"] - 1.0,
        "overhead_paired_median": statistics.median(paired),
        "load_average_end": os.getloadavg()[0],
        "hook_seconds": hooks, "hook_share_of_epoch": hooks / median["off"],
        "in_situ_shares": in_situ, "in_situ_share_median": statistics.median(in_situ),
    }
    print(f"\n{'':<10}{'off s':>9}{'on s':>9}{'overhead':>10}")
    for name, stat in (("median", median), ("best", best)):
        print(f"{name:<10}{stat['off']:>9.3f}{stat['on']:>9.3f}"
              f"{stat['on'] / stat['off'] - 1.0:>+10.1%}")
    print(f"{'paired':<10}{'':>18}{summary['overhead_paired_median']:>+10.1%}"
          "   (median of each round's on/off - 1)")
    print(f"{'hooks':<10}{'':>9}{hooks:>9.3f}{hooks / median['off']:>+10.1%}"
          "   (the diagnostics' own work for an epoch, timed alone, / median off)")
    print(f"{'in situ':<10}{'':>18}{summary['in_situ_share_median']:>+10.1%}"
          "   (median share of an 'on' epoch spent in the hooks)")
    print(f"load average at the end {summary['load_average_end']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = RESULTS / f"bench_diagnostics-{stamp}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nwritten {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
