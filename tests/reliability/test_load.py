"""Load: many small jobs through two worker processes on PostgreSQL + Redis.

Every job must succeed, no row may be lost (each job has its metrics, its checkpoints, its
three events), and the job_leases records must show that no job ever held two leases whose
[claimed_at, released_at) intervals overlap. Beat runs reconcile as in production (queued grace
60 s), so a backlog older than the grace gets duplicate messages: each costs one refused claim
("skipped" in the worker log), never a second run.

200 jobs run in the suite; the 1,000-job run is `make load` (marker `load`). Both print the
throughput, which docs/reliability.md quotes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa

from store.models import Checkpoint, Job, JobEvent, JobLease, Metric
from tests.reliability.conftest import BackendFactory, wait_all
from tests.worker.conftest import Backend, create_job, xor_spec

METRICS_PER_EPOCH = 6  # loss, accuracy, val_loss, val_accuracy, lr, seconds


def create_jobs(b: Backend, n: int) -> list[str]:
    return [create_job(b, xor_spec(epochs=1 + i % 2), tenant="load", cap=n) for i in range(n)]


def overlapping(spans: list[tuple[Any, Any]]) -> int:
    """Neighbouring [start, end) intervals that overlap, by start (an open lease never ends):
    zero exactly when no two intervals overlap."""
    spans = sorted(spans, key=lambda span: span[0])
    return sum(1 for (_, end), (start, _) in pairwise(spans)
               if end is None or start < end)


def per_job_counts(b: Backend, model: Any, job_ids: list[str]) -> dict[str, int]:
    with b.sessions() as s:
        rows = s.execute(sa.select(model.job_id, sa.func.count()).where(model.job_id.in_(job_ids))
                         .group_by(model.job_id))
        return {str(job_id): int(n) for job_id, n in rows}


def run_load(production: BackendFactory, n: int) -> None:
    b = production(queued_grace_s="60", reconcile_interval_s="10")
    b.start_worker("w1")
    b.start_worker("w2")
    b.start_beat()
    job_ids = create_jobs(b, n)
    b.send(job_ids[0])  # the first delivery waits for both workers to be up
    wait_all(b, job_ids[:1], timeout=120, what="the first job")
    started = time.monotonic()
    for job_id in job_ids[1:]:
        b.send(job_id)
    wait_all(b, job_ids, timeout=60 + n * 1.0, what=f"{n} jobs")
    elapsed = time.monotonic() - started

    with b.sessions() as s:
        status = dict(s.execute(sa.select(Job.status, sa.func.count())
                                .where(Job.id.in_(job_ids)).group_by(Job.status)).all())
        epochs = dict(s.execute(sa.select(Job.id, Job.epochs_total)
                                .where(Job.id.in_(job_ids))).all())
        spans: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
        outcomes: dict[str, int] = defaultdict(int)
        for lease in s.scalars(sa.select(JobLease).where(JobLease.job_id.in_(job_ids))):
            spans[lease.job_id].append((lease.claimed_at, lease.released_at))
            outcomes[str(lease.outcome)] += 1
    skipped = sum(log.read_text(errors="replace").count(": skipped")
                  for log in b.log_dir.glob("w*.log"))
    print(f"\nload: {n} jobs in {elapsed:.1f} s = {(n - 1) / elapsed:.1f} jobs/s through 2 "
          f"workers; leases {dict(outcomes)}; refused duplicate deliveries {skipped}")

    assert status == {"succeeded": n}
    assert sorted(spans) == sorted(job_ids)
    assert sum(overlapping(s) for s in spans.values()) == 0
    assert outcomes["succeeded"] == n
    metrics = per_job_counts(b, Metric, job_ids)
    assert metrics == {j: METRICS_PER_EPOCH * epochs[j] for j in job_ids}
    events = per_job_counts(b, JobEvent, job_ids)  # queued, running, each epoch, succeeded
    assert events == {j: 3 + epochs[j] for j in job_ids}
    kept = per_job_counts(b, Checkpoint, job_ids)  # periodic(s), best, final; pruned to policy
    assert set(kept) == set(job_ids) and min(kept.values()) >= 2


def test_200_small_jobs_through_two_workers(production: BackendFactory) -> None:
    run_load(production, 200)


@pytest.mark.load
def test_1000_small_jobs_through_two_workers(production: BackendFactory) -> None:
    run_load(production, 1000)
