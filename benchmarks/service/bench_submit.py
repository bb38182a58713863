"""Job submission through `weightsmith api` on PostgreSQL + Redis: accepted jobs per second.

Usage: ``.venv/bin/python benchmarks/service/bench_submit.py [--rounds 3] [--quick]
[--seconds 10] [--connections 16] [--tenants 256]``

Issue 4, "Performance": at least **500 accepted jobs/s**. wrk POSTs a job spec (docs/spec.md)
(the digits MLP) to ``/v1/jobs`` over ``--connections`` connections, every request with a fresh
``Idempotency-Key`` and the API key of the next of ``--tenants`` tenants, so each one is a
new job: validated by core.spec, dry-run, inserted with its "queued" event, committed, and
sent to the Redis queue. Only 202s count; afterwards the script checks that the database
holds exactly that many jobs and the Redis queue exactly that many messages.

The load comes from 256 tenants by default, each well under the product's per-key rate limit
(50 requests/s), which stays as it ships. No worker runs, so the per-tenant quota of queued
and running jobs is raised out of the way (a policy, not a speed), and before each run every
queued job is marked succeeded, as workers would have finished them: each round starts from
the same state. Until session 6 the script ran 16 tenants with the queue only filling; each
submission's quota check then counted its tenant's ~300-1,000 queued jobs, and PostgreSQL's
CPU per job rose round by round (0.62, 1.18, 1.56 ms). The bare Flask echo of the same body
under the same gunicorn command line is measured alternately, for scale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import wrk
from bench_predict import HERE, api_defaults, echo_argv

SPEC = {
    "name": "digits-mlp",
    "dataset": "builtin:digits",
    "model": {"layers": [
        {"type": "dense", "units": 128, "activation": "relu", "weight_init": "he_normal"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "learning_rate": 0.001},
    "training": {"epochs": 20, "batch_size": 32},
}
QUOTA = {"WEIGHTSMITH_MAX_CONCURRENT_JOBS": "1000000"}
# bench_submit_cpu submits as one tenant, as fast as one thread can: no rate limit either.
LIMITS = {**QUOTA, "WEIGHTSMITH_RATE_LIMIT": "1000000 per second"}


def counts(db: str, broker: str) -> tuple[int, int]:
    """(jobs in the database, messages waiting in the Redis queue)."""
    import redis
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        jobs = int(conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one())
    engine.dispose()
    client = redis.Redis.from_url(broker)
    queued = int(client.llen("weightsmith"))
    client.close()
    return jobs, queued


def finish_queued_jobs(db: str) -> None:
    """Mark every queued job succeeded, as workers would have (their messages stay queued)."""
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE jobs SET status = 'succeeded' WHERE status = 'queued'"))
    engine.dispose()


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--tenants", type=int, default=256)
    p.add_argument("--api-workers", type=int, default=None,
                   help="pass --workers to weightsmith api (default: its own default)")
    p.add_argument("--api-threads", type=int, default=None,
                   help="pass --threads to weightsmith api (default: its own default)")
    args = harness.parse(p)
    seconds = 3.0 if args.quick else args.seconds
    workers, threads = api_defaults()
    workers = args.api_workers or workers
    threads = args.api_threads or threads
    body = json.dumps(SPEC)
    print(f"gunicorn asgi worker, {workers} workers x {threads} threads; {args.connections} "
          f"connections, {args.tenants} tenants; load {harness.load()}", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    with harness.scratch_postgres() as db, harness.private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix="ws-bench-submit-") as tmp:
        from store.db import make_engine, make_session_factory

        engine = make_engine(db)
        sessions = make_session_factory(engine)
        keys = [harness.create_key(sessions, f"bench-{i}") for i in range(args.tenants)]
        engine.dispose()
        env = harness.service_env(Path(tmp), db, broker.url, **QUOTA)
        api_port, echo_port = harness.free_port(), harness.free_port()
        api_cmd = [sys.executable, "-m", "service.cli", "api", "--port", str(api_port),
                   "--workers", str(workers), "--threads", str(threads)]
        echo_env = {**env, "PYTHONPATH": f"{HERE}:{harness.ROOT}"}
        headers = {"Content-Type": "application/json"}
        targets = {"api": f"http://127.0.0.1:{api_port}/v1/jobs",
                   "echo": f"http://127.0.0.1:{echo_port}/echo"}
        with harness.child(api_cmd, "submit-api", env) as api, \
                harness.child(echo_argv(echo_port), "submit-echo", echo_env) as echo_proc:
            meters = {"api": harness.CpuMeter({"api": api.pid, "redis": broker.pid}, db),
                      "echo": harness.CpuMeter({"echo": echo_proc.pid})}
            harness.wait_port(api_port)
            harness.wait_port(echo_port)
            for url in targets.values():  # warm-up (its jobs count in the check below)
                runs.setdefault("warmup", []).append(wrk.run(
                    url, body, headers, connections=args.connections, threads=1, seconds=2,
                    rotate_keys=keys).as_dict())
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}  (load {harness.load()})", flush=True)
                for name, url in targets.items():
                    if name == "api":
                        finish_queued_jobs(db)
                    row = wrk.run_metered(meters[name], url, body, headers,
                                          connections=args.connections, threads=1,
                                          seconds=seconds, rotate_keys=keys)
                    runs.setdefault(name, []).append(row)
                    print(f"  {name:<5} {row['ok_per_s']:8.0f} 2xx/s  p50 {row['p50_ms']:6.2f} ms"
                          f"  p99 {row['p99_ms']:6.2f} ms  non-2xx {row['non2xx']}  socket "
                          f"errors {row['socket_errors']}  CPU ms/req "
                          f"{row['cpu_ms_per_request']}  load {row['load']:.2f}", flush=True)
        accepted = sum(r["requests"] - r["non2xx"] for r in runs["api"]) + (
            runs["warmup"][0]["requests"] - runs["warmup"][0]["non2xx"])
        jobs, queued = counts(db, broker.url)
    rate = harness.median([r["ok_per_s"] for r in runs["api"]])
    cpu = {c: harness.median([r["cpu_ms_per_request"][c] for r in runs["api"]])
           for c in runs["api"][0]["cpu_ms_per_request"]}
    server_cpu = sum(v for k, v in cpu.items() if k != "wrk")
    echo = harness.median([r["ok_per_s"] for r in runs["echo"]])
    harness.print_table(
        f"POST /v1/jobs (PostgreSQL + Redis); medians of {args.rounds} rounds",
        ["case", "accepted/s", "echo req/s", "ratio", "p50 ms", "p99 ms", "target", "verdict"],
        [[f"{args.connections} connections", rate, echo, rate / echo,
          harness.median([r["p50_ms"] for r in runs["api"]]),
          harness.median([r["p99_ms"] for r in runs["api"]]), ">=500/s",
          harness.verdict(rate >= 500)]])
    # wrk stops counting at the deadline while up to one request per connection is still in
    # flight; those complete on the server, so the database may hold a few more jobs.
    in_flight = (len(runs["api"]) + 1) * args.connections
    consistent = jobs == queued and accepted <= jobs <= accepted + in_flight
    print(f"  check: {accepted} 202s counted by wrk, {jobs} jobs in PostgreSQL, {queued} "
          f"messages in Redis (at most {in_flight} in flight at the deadlines): "
          f"{'consistent' if consistent else 'INCONSISTENT'}")
    print(f"  CPU ms per accepted job: {cpu}; two idle cores would accept about "
          f"{2000 / server_cpu:.0f} jobs/s at this CPU cost (API + PostgreSQL + Redis)")
    harness.write_results("bench_submit", {
        "workers": workers, "threads": threads, "rounds": args.rounds, "seconds_per_run": seconds,
        "connections": args.connections, "tenants": args.tenants, "runs": runs,
        "accepted_per_s_median": rate, "echo_per_s_median": echo,
        "accepted_total": accepted, "jobs_in_db": jobs, "messages_in_redis": queued,
        "consistent": consistent, "cpu_ms_per_request": cpu,
        "idle_two_core_estimate_per_s": 2000 / server_cpu})


if __name__ == "__main__":
    main()
