"""The project's own static checks run with the suite, so CI holds every commit to them:
ruff over the whole tree, and mypy --strict over core/, config/, store/ and worker/ (as
`make typecheck` runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_config_store_worker_and_export_pass_mypy_strict() -> None:
    result = _run(str(BIN / "mypy"), "--no-incremental", "--strict", "core", "config", "store",
                  "worker", "export")
    assert result.returncode == 0, result.stdout + result.stderr
