"""`service.wsgi:app`, gunicorn's entry point, in a fresh interpreter as a gunicorn worker has."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import gc
import service.wsgi as wsgi
assert gc.get_freeze_count() == 0
app = wsgi.app
assert wsgi.app is app  # built once
frozen = gc.get_freeze_count()
assert frozen > 10_000, frozen  # the startup heap is out of every collection
print(frozen)
"""


def test_the_app_is_built_once_and_its_startup_heap_frozen(tmp_path: Path) -> None:
    env = {"WEIGHTSMITH_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) > 10_000
