"""Run every ``benchmarks/bench_*.py`` script in turn, passing the same arguments to each.

Usage: ``.venv/bin/python benchmarks/run_all.py [--rounds 3] [--quick]``

Each script prints its own table and writes its JSON into ``benchmarks/results/``; this
runner only sequences them (never in parallel: they would time each other) and reports
which ones failed. The exit status is the number of failed scripts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    scripts += sorted((HERE / "service").glob("bench_*.py"))  # service/README.md
    failed = []
    for script in scripts:
        print(f"=== {script.name} {' '.join(sys.argv[1:])}", flush=True)
        started = time.time()
        done = subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=False)
        print(f"=== {script.name}: exit {done.returncode} in {time.time() - started:.0f} s\n",
              flush=True)
        if done.returncode != 0:
            failed.append(script.name)
    print(f"{len(scripts) - len(failed)} of {len(scripts)} benchmark scripts ran"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
