"""An address-space limit for the duration of one job, from the job's memory estimate.

The API refuses jobs whose estimate exceeds the budget (core/budget.py), but an estimate can be
wrong (10^5 ReLU layers were estimated at a few hundred MB and peaked at 7.2 GB: per-layer
scratch the dry run does not model). Under ``RLIMIT_AS`` an allocation past the limit raises
MemoryError in the job, which fails with that reason, instead of the kernel's OOM killer taking
the worker, or the host, down.

The limit is the address space the pool process already maps when the job starts (the
interpreter, NumPy and BLAS, the loaded data), plus ``JOB_MEMORY_FACTOR`` times the estimate,
plus ``settings.job_memory_headroom_bytes``: address space is not memory in use (every thread
reserves a stack and, with glibc, a 64 MB malloc arena; OpenBLAS maps buffers per thread), and
a run makes working copies the estimate counts once (the commit's serialised checkpoints;
the estimate counts the loaded data again, though a run never copies it). It applies to the
whole process, so only a process that runs one job at a time may set it: Celery's prefork
pool child, for the task's duration (worker/tasks.py); the previous limit is restored after.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager

JOB_MEMORY_FACTOR = 2


def mapped_bytes() -> int:
    """The process's current virtual size (VmSize), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def job_limit(estimate_bytes: int, headroom_bytes: int) -> int:
    """The address-space limit for a job of `estimate_bytes`, started now."""
    return mapped_bytes() + JOB_MEMORY_FACTOR * estimate_bytes + headroom_bytes


@contextmanager
def address_space_limit(limit_bytes: int) -> Iterator[int]:
    """Run the block with RLIMIT_AS at `limit_bytes` (never above a limit already set);
    yields the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = limit_bytes
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            limit = min(limit, bound)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
