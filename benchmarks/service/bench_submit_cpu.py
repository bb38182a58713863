"""CPU per job submission in process: the app's own cost, without gunicorn, wrk or sockets.

Usage: ``.venv/bin/python benchmarks/service/bench_submit_cpu.py [--rounds 3] [--jobs 1400]``

``bench_submit.py`` measures accepted jobs/s through ``weightsmith api`` and the CPU each job
costs per process; on a noisy 2-core box both move with the machine. This script POSTs the
same job spec to ``/v1/jobs`` through Flask's test client on PostgreSQL + Redis (a scratch
database, a private redis-server) and reads this process's CPU clock around batches of
submissions: the median batch is the app's CPU per job (plus the test client's, a constant).
Run it from another commit's worktree to compare two commits in one sitting, alternately.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import harness
from bench_submit import LIMITS, SPEC

BATCHES = 7


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--jobs", type=int, default=1400, help="submissions per round")
    args = harness.parse(p)
    with harness.scratch_postgres() as db, harness.private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix="ws-bench-submit-cpu-") as tmp:
        os.environ.update(harness.service_env(Path(tmp), db, broker.url, **LIMITS))
        from config.settings import Settings
        from service.app import create_app

        app = create_app(Settings.from_env())
        key = harness.create_key(app.extensions["weightsmith"].session_factory)
        client = app.test_client()
        body = json.dumps(SPEC)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def submit() -> None:
            response = client.post("/v1/jobs", data=body,
                                   headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            assert response.status_code == 202, response.data

        for _ in range(200):  # warm-up: pools, caches, the first publish's queue declaration
            submit()
        per_batch = max(1, args.jobs // BATCHES)
        rounds = []
        for r in range(args.rounds):
            batches = []
            for _ in range(BATCHES):
                started = time.process_time()
                for _ in range(per_batch):
                    submit()
                batches.append(1000 * (time.process_time() - started) / per_batch)
            rounds.append(harness.median(batches))
            print(f"round {r + 1}/{args.rounds}: median {rounds[-1]:.2f} ms of CPU per job "
                  f"(batches {', '.join(f'{b:.2f}' for b in sorted(batches))}); "
                  f"load {harness.load()}", flush=True)
        app.extensions["weightsmith"].engine.dispose()
    harness.print_table(
        f"POST /v1/jobs in process (PostgreSQL + Redis); medians of {args.rounds} rounds",
        ["case", "CPU ms per job"], [["Flask test client", harness.median(rounds)]])
    harness.write_results("bench_submit_cpu", {"jobs_per_round": args.jobs, "rounds": rounds})


if __name__ == "__main__":
    main()
