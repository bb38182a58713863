"""Sweeps with real `celery worker` processes and the real core, on both backend sets:
a sweep completes; a replay with the same seed one trial at a time makes the same trials and
decisions; a worker killed with SIGKILL mid-sweep loses no trial and runs none twice at once.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from typing import Any

import sqlalchemy as sa

from store import sweeps
from store.models import Job, JobLease, Sweep
from tests.worker.conftest import Backend, upload_xor
from tests.worker.sweep_helpers import create_sweep, sweep_body
from worker.celery_app import SWEEP_STEP_TASK

TERMINAL = ("succeeded", "failed", "cancelled")
EPOCHS = 12  # of a trial in the kill test


def start(b: Backend, body: dict[str, Any]) -> str:
    sweep_id = create_sweep(b, body)
    b.celery.send_task(SWEEP_STEP_TASK, args=[sweep_id])
    return sweep_id


def wait_sweep(b: Backend, sweep_id: str, timeout: float = 240.0) -> Sweep:
    deadline = time.monotonic() + timeout
    while True:
        with b.sessions() as s:
            sweep = s.get(Sweep, sweep_id)
            assert sweep is not None
            if sweep.status in TERMINAL:
                return sweep
        if time.monotonic() > deadline:
            raise AssertionError(f"sweep {sweep_id} still {sweep.status}\n{b.logs()}")
        time.sleep(0.2)


def record(b: Backend, sweep_id: str) -> dict[str, Any]:
    with b.sessions() as s:
        trials = sweeps.trials(s, sweep_id)
        jobs = {j.id: j for j in s.scalars(sa.select(Job).where(Job.sweep_id == sweep_id))}
        return {
            "trials": [(t.trial_index, t.params, t.outcome, t.epochs_run, t.value)
                       for t in trials],
            "rungs": [(r.trial_index, r.rung, r.value, r.continues)
                      for r in sweeps.decisions(s, sweep_id)],
            "ends": sorted(t.end_seq for t in trials),
            "jobs": jobs,
        }


def test_a_sweep_completes_and_a_one_at_a_time_replay_repeats_it(backend: Backend) -> None:
    b = backend
    b.start_worker("w1")
    b.start_worker("w2")
    parallel = start(b, sweep_body(search={"method": "random", "seed": 5, "max_trials": 4,
                                           "max_concurrent": 2}))
    assert wait_sweep(b, parallel).status == "succeeded"
    got = record(b, parallel)
    assert len(got["trials"]) == 4 and got["ends"] == [1, 2, 3, 4]
    assert {t[2] for t in got["trials"]} <= {"succeeded", "pruned"}
    assert all(j.sweep_id == parallel and j.attempts == 1 for j in got["jobs"].values())

    one_at_a_time = sweep_body(search={"method": "tpe", "seed": 5, "max_trials": 4,
                                       "max_concurrent": 1})
    first_id = start(b, one_at_a_time)
    assert wait_sweep(b, first_id).status == "succeeded"
    first = record(b, first_id)
    second_id = start(b, one_at_a_time)
    assert wait_sweep(b, second_id).status == "succeeded"
    second = record(b, second_id)
    assert first["trials"] == second["trials"]  # params, outcomes, epochs and values
    assert first["rungs"] == second["rungs"]


def overlapping(leases: list[JobLease]) -> bool:
    spans = sorted((lease.claimed_at, lease.released_at) for lease in leases)
    return any(end is None or end > nxt for (_, end), (nxt, _) in itertools.pairwise(spans))


def test_a_worker_killed_mid_sweep_loses_no_trial(backend: Backend) -> None:
    b = backend
    w1 = b.start_worker("w1")
    b.start_worker("w2")
    b.start_beat()  # reconcile: takes over the killed worker's trial, steps the sweep
    body = sweep_body(search={"method": "random", "seed": 9, "max_trials": 4,
                              "max_concurrent": 2}, scheduler=None)
    # 10,800 single-row batches an epoch, 12 epochs: a trial outlasts several of the worker's
    # commits (one a second here), and the victim is taken in the first half of its epochs,
    # so it is still running when killed however fast the machine is (a trial takes ~5 s
    # here; at 2,700 rows one finished between being seen and the kill)
    body["base"]["dataset"] = upload_xor(b, 12000, "xor-big")
    body["base"]["training"].update(epochs=EPOCHS, batch_size=1, validation_split=0.1)
    sweep_id = start(b, body)
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        with b.sessions() as s:
            running = s.scalars(sa.select(Job).where(Job.sweep_id == sweep_id,
                                                     Job.status == "running",
                                                     Job.epoch_done >= 1,
                                                     Job.epoch_done <= EPOCHS // 2)).first()
            if running is not None and running.lease_owner:
                victim = int(running.lease_owner.split(":")[1])
        time.sleep(0.1)
    assert victim is not None, b.logs()
    group = os.getpgid(victim)
    os.killpg(group, signal.SIGKILL)
    killed_w1 = group == w1.pid
    b.start_worker("w3")  # the pool goes back to two workers
    assert wait_sweep(b, sweep_id, timeout=300).status == "succeeded", b.logs()
    got = record(b, sweep_id)
    assert len(got["trials"]) == 4 and got["ends"] == [1, 2, 3, 4]  # every trial ended once
    assert {t[2] for t in got["trials"]} == {"succeeded"}
    assert all(t[3] == EPOCHS for t in got["trials"])
    with b.sessions() as s:
        for job_id in got["jobs"]:
            leases = list(s.scalars(sa.select(JobLease).where(JobLease.job_id == job_id)))
            assert not overlapping(leases), (job_id, [(x.claimed_at, x.released_at)
                                                      for x in leases])
        taken_over = [j for j in got["jobs"].values() if j.attempts > 1]
    assert taken_over, f"no trial was running on the killed worker (w1 killed: {killed_w1})"
