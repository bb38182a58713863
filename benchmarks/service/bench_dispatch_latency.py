"""Commit-to-running latency with an idle worker on PostgreSQL + Redis.

Usage: ``.venv/bin/python benchmarks/service/bench_dispatch_latency.py [--rounds 3] [--quick]
[--samples 20]``

Issue 3, "Performance": with an idle worker, the time from the commit that creates a job to
the worker's claim (the job's ``started_at``, written by the claiming UPDATE) has a median
**under 250 ms**. A real ``weightsmith worker`` (Celery prefork, concurrency 1) and
``weightsmith api`` run on a scratch PostgreSQL database and a private Redis. Two ways in,
alternately, each job a one-epoch xor so the worker is idle again within a moment:

- ``store``: the job row committed by ``store.jobs.create_job`` in this process, then
  ``send_task`` through a ``make_celery`` app, as the service's dispatcher does; latency =
  ``started_at`` minus the time right after the commit (same host, same clock);
- ``api``: ``POST /v1/jobs`` over HTTP; latency = ``started_at`` minus the job's
  ``created_at`` (stamped inside the request's transaction, just before its commit), and,
  as the client sees it, ``started_at`` minus the moment the request was sent.

Between samples the script waits for the job to end and then a random 0.2-0.5 s, so every
job finds the worker idle and blocked on the broker, as a quiet production worker is.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

SPEC = {"name": "latency", "dataset": "builtin:xor",
        "model": {"layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                             {"type": "dense", "units": 2}]},
        "training": {"epochs": 1, "batch_size": 4}}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def wait_job(sessions: Any, job_id: str, timeout: float = 60.0) -> Any:
    """Poll until the job has ended; the row."""
    from store.models import Job
    from store.statuses import TERMINAL_STATUSES

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as s:
            job = s.get(Job, job_id)
            if job is not None and job.status in TERMINAL_STATUSES:
                return job
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} did not end within {timeout} s")


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def via_store(sessions: Any, celery: Any, tenant_id: str) -> dict[str, float]:
    from core.spec import Spec
    from store import jobs

    with sessions.begin() as s:
        job_id = jobs.create_job(s, tenant_id, Spec.from_dict(SPEC).to_dict(), None).id
    committed = now()
    celery.send_task("weightsmith.train_job", args=[job_id])
    job = wait_job(sessions, job_id)
    if job.status != "succeeded":
        raise RuntimeError(f"job {job_id}: {job.status} {job.failure_reason}")
    return {"latency_ms": (aware(job.started_at) - committed).total_seconds() * 1e3}


def via_api(sessions: Any, client: Any) -> dict[str, float]:
    sent = now()
    response = client.post("/v1/jobs", json=SPEC)
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text}")
    job = wait_job(sessions, response.json()["id"])
    if job.status != "succeeded":
        raise RuntimeError(f"job {job.id}: {job.status} {job.failure_reason}")
    started = aware(job.started_at)
    return {"latency_ms": (started - aware(job.created_at)).total_seconds() * 1e3,
            "client_ms": (started - sent).total_seconds() * 1e3}


def main() -> None:
    import httpx

    from store.db import make_engine, make_session_factory
    from store.tenants import get_or_create
    from worker.celery_app import make_celery

    p = harness.parser(__doc__)
    p.add_argument("--samples", type=int, default=20, help="jobs per way in, per round")
    args = harness.parse(p)
    samples = 5 if args.quick else args.samples
    print(f"load {harness.load()}", flush=True)
    runs: dict[str, list[dict[str, float]]] = {"store": [], "api": []}
    with harness.scratch_postgres() as db, harness.private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix="ws-bench-latency-") as tmp:
        from config.settings import Settings

        settings = Settings(data_dir=Path(tmp), database_url=db, broker_url=broker.url)
        engine = make_engine(db)
        sessions = make_session_factory(engine)
        key = harness.create_key(sessions)
        with sessions.begin() as s:
            tenant_id = str(get_or_create(s, "bench").id)
        celery = make_celery(settings)
        env = harness.service_env(Path(tmp), db, broker.url,
                                  WEIGHTSMITH_MAX_CONCURRENT_JOBS="1000")
        port = harness.free_port()
        worker = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1",
                  "--loglevel", "WARNING"]
        api = [sys.executable, "-m", "service.cli", "api", "--port", str(port)]
        with harness.child(worker, "latency-worker", env), \
                harness.child(api, "latency-api", env), \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                             headers={"Authorization": f"Bearer {key}"}) as client:
            harness.wait_port(port)
            for _ in range(3):  # warm-up: the worker child's imports, pools, the API's
                via_store(sessions, celery, tenant_id)
                via_api(sessions, client)
            for r in range(args.rounds):
                for _ in range(samples):
                    for way in ("store", "api"):
                        time.sleep(random.uniform(0.2, 0.5))
                        row = via_store(sessions, celery, tenant_id) if way == "store" \
                            else via_api(sessions, client)
                        row["load"] = harness.load()
                        runs[way].append(row)
                print(f"round {r + 1}/{args.rounds}: store median "
                      f"{harness.median([x['latency_ms'] for x in runs['store']]):.1f} ms, "
                      f"api median {harness.median([x['latency_ms'] for x in runs['api']]):.1f}"
                      f" ms; load {harness.load()}", flush=True)
        engine.dispose()
    report(runs)


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    rows = []
    summary: dict[str, Any] = {"runs": runs}
    for way, field, label in (("store", "latency_ms", "store commit -> started_at"),
                              ("api", "latency_ms", "API created_at -> started_at"),
                              ("api", "client_ms", "API request sent -> started_at")):
        values = [r[field] for r in runs[way]]
        med, p90 = harness.median(values), harness.percentile(values, 90)
        summary[f"{way}.{field}"] = {"median": med, "p90": p90, "max": max(values),
                                     "n": len(values)}
        rows.append([label, len(values), med, p90, max(values), "median<250 ms",
                     harness.verdict(med < 250)])
    loads = [r["load"] for v in runs.values() for r in v]
    harness.print_table(
        f"commit-to-running latency, idle worker, PostgreSQL + Redis (load "
        f"{min(loads):.1f}-{max(loads):.1f})",
        ["path", "jobs", "median ms", "p90 ms", "max ms", "target", "verdict"], rows)
    harness.write_results("bench_dispatch_latency", summary)


if __name__ == "__main__":
    main()
