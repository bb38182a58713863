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
import uuid

import harness
from bench_submit import LIMITS, SPEC

BATCHES = 7


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--jobs", type=int, default=1400, help="submissions per round")
    args = harness.parse(p)
    with harness.app_in_process("bench-submit-cpu", **LIMITS) as (app, key):
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
            batches = harness.cpu_batches(submit, per_batch, BATCHES)
            rounds.append(harness.median(batches))
            print(f"round {r + 1}/{args.rounds}: median {rounds[-1]:.2f} ms of CPU per job "
                  f"(batches {', '.join(f'{b:.2f}' for b in sorted(batches))}); "
                  f"load {harness.load()}", flush=True)
    harness.print_table(
        f"POST /v1/jobs in process (PostgreSQL + Redis); medians of {args.rounds} rounds",
        ["case", "CPU ms per job"], [["Flask test client", harness.median(rounds)]])
    harness.write_results("bench_submit_cpu", {"jobs_per_round": args.jobs, "rounds": rounds})


if __name__ == "__main__":
    main()
