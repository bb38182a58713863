"""The thread pins every benchmark runs under, set before NumPy's BLAS starts.

BLAS reads its thread count once, when it loads, so a script re-executes itself with the
variables in its environment. The OpenBLAS variables this machine sets for old builds pin a
slower kernel; every benchmark drops them, so that all their figures compare.
"""

from __future__ import annotations

import os
import sys

PINNED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int | None) -> None:
    """Re-execute this script once with PINNED dropped and, unless ``threads`` is None (the
    libraries' own choice), every BLAS/OpenMP thread count set to ``threads``."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARS})
    if env != dict(os.environ):
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
