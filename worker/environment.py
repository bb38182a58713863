"""What a run ran on: recorded with each claim, shown in a job's manifest.

Bit-identical training needs the same code, the same NumPy and BLAS (another library, or
the same one with another thread count, may round differently) and the same dtype; these are
the facts to compare when two runs of one spec differ.
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

SOURCE_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _static() -> dict[str, Any]:
    try:
        version = metadata.version("weightsmith")
    except metadata.PackageNotFoundError:
        version = None
    return {"weightsmith": version, "commit": _commit(), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}


def _commit() -> str | None:
    """The source checkout's commit, when the worker runs from one (None for a wheel)."""
    if not (SOURCE_ROOT / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe() -> dict[str, Any]:
    """This process now: versions, host, and each BLAS library with its thread count."""
    blas = [{"library": info.get("internal_api"), "version": info.get("version"),
             "threads": info.get("num_threads"), "architecture": info.get("architecture")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    return {**_static(), "hostname": socket.gethostname(), "blas": blas}
