"""BLAS threads per worker process: the cores divided among the pool's processes.

OpenBLAS starts as many threads as the machine has cores in every process. With a prefork
pool of N processes on C cores that is N*C spinning threads, and its threaded GEMM collapses
when they contend (a digits-CNN step measured 51 ms with 2 threads per process under load
against 10.9 ms with 1). Each pool child therefore limits BLAS to C // N threads, or to
``WEIGHTSMITH_BLAS_THREADS`` when set.
"""

from __future__ import annotations

import os
from typing import Any

from config.settings import Settings


def blas_threads_for(settings: Settings, concurrency: int | None,
                     cpus: int | None = None) -> int:
    """Threads for one of `concurrency` pool processes: the override, else cpus // concurrency.

    An unknown concurrency (Celery's "auto" is resolved only after ``worker_init``) is taken
    as one process per core, the pool size "auto" aims at.
    """
    if settings.blas_threads is not None:
        return settings.blas_threads
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    processes = concurrency if concurrency is not None and concurrency > 0 else cpus
    return max(1, cpus // processes)


def limit_blas_threads(threads: int) -> list[dict[str, Any]]:
    """Limit every loaded BLAS library of this process to `threads`; returns threadpoolctl's info.

    The core (hence NumPy and its BLAS) is imported first: threadpoolctl only sees libraries
    already loaded, and one loaded later would start with its default thread count.
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    import core.network  # noqa: F401  (the worker trains with it: NumPy loads OpenBLAS here)

    # The limit holds from the call on; the returned object only matters to restore it.
    threadpool_limits(limits=threads, user_api="blas")
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]
