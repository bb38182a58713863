"""The sweep controller in process, with the real core: trials, ASHA, retries, cancel, budget.

Steps and trial runs are delivered from a recorded queue (tests/worker/sweep_helpers.py);
test_sweep_processes.py repeats the main case with real worker processes.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from core.checkpoint import load_checkpoint
from core.sweeps import continues, random_point
from store import sweeps
from store.columns import utcnow
from store.models import Job, Sweep, SweepTrial
from store.sweep_resources import sweep_json, trial_json
from tests.worker.conftest import Backend
from tests.worker.sweep_helpers import Queue, create_sweep, drive, sweep_body
from worker import store_ops
from worker.celery_app import TRAIN_TASK
from worker.sweep_controller import _result, stored_spec
from worker.sweep_tasks import run_step


def outcome(b: Backend, sweep_id: str) -> dict[str, Any]:
    with b.sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep is not None
        trials = sweeps.trials(s, sweep_id)
        jobs = {j.id: j for j in s.scalars(sa.select(Job).where(Job.sweep_id == sweep_id))}
        spec = stored_spec(sweep)
        return {
            "sweep": sweep_json(sweep, trials, jobs, spec.objective, spec.epochs),
            "trials": [trial_json(t, jobs.get(t.job_id or ""), spec.objective[0])
                       for t in trials],
            "rungs": [(r.trial_index, r.rung, r.value, r.continues)
                      for r in sweeps.decisions(s, sweep_id)],
            "jobs": jobs,
            "events": [e.type for e in sweeps.events_after(s, sweep_id, 0)],
        }


@pytest.mark.parametrize("backend_name", ["sqlite_backend", "postgres_backend"])
def test_a_random_asha_sweep_completes(backend_name: str,
                                       request: pytest.FixtureRequest) -> None:
    b: Backend = request.getfixturevalue(backend_name)
    sweep_id = create_sweep(b, sweep_body())
    ran = drive(b, sweep_id)
    got = outcome(b, sweep_id)
    sweep = got["sweep"]
    assert sweep["status"] == "succeeded" and sweep["stop_reason"] is None
    assert sweep["trials"]["total"] == 6 and len(ran) == 6
    assert sweep["trials"]["succeeded"] + sweep["trials"]["pruned"] == 6
    spec = stored_spec_of(b, sweep_id)
    # each trial is an ordinary job of the sweep, with the trial's parameters applied
    for trial in got["trials"]:
        job = got["jobs"][trial["job_id"]]
        assert job.sweep_id == sweep_id and job.attempts == 1
        assert trial["params"] == random_point(spec.space, 7, trial["index"])
        if trial["status"] == "pruned":
            assert job.stop_reason == "pruned" and job.status == "succeeded"
            pruned_at = {t: r for t, r, _, goes_on in got["rungs"] if not goes_on}
            assert trial["epochs_run"] == pruned_at[trial["index"]]  # at its rung, not later
        else:
            assert trial["epochs_run"] == 9 and job.stop_reason == "epochs_done"
    assert sweep["epochs_run"] == sum(t["epochs_run"] for t in got["trials"])
    assert sweep["epochs_budget"] == 6 * 9
    # every stored decision is the rule's, from the rows before it
    with b.sessions() as s:
        rows = sweeps.decisions(s, sweep_id)
    table = [_result(r) for r in rows]
    assert [r.continues for r in rows] == [
        continues(table, row, "max", 3) for row in table]
    assert sweep["trials"]["pruned"] >= 1
    best = max((t for t in got["trials"] if t["best"]), key=lambda t: (
        t["best"]["val_accuracy"], -t["index"]))
    assert sweep["best"]["trial"] == best["index"]
    assert got["events"][0] == "status" and got["events"][-1] == "sweep_finished"
    assert got["events"].count("trial_started") == 6
    assert got["events"].count("trial_finished") == 6


def stored_spec_of(b: Backend, sweep_id: str) -> Any:
    with b.sessions() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep is not None
        return stored_spec(sweep)


def best_weights(b: Backend, job_id: str) -> np.ndarray:
    with b.sessions() as s:
        blob = store_ops.latest_checkpoint_blob(s, job_id)
    assert blob is not None
    return load_checkpoint(blob).flat_params.copy()


def test_replay_with_one_at_a_time_gives_the_same_trials_decisions_and_weights(
        sqlite_backend: Backend) -> None:
    b = sqlite_backend
    body = sweep_body(search={"method": "tpe", "seed": 11, "max_trials": 5,
                              "max_concurrent": 1})
    runs = []
    for _ in range(2):
        sweep_id = create_sweep(b, body)
        drive(b, sweep_id)
        got = outcome(b, sweep_id)
        runs.append((sweep_id, got))
    (_, first), (_, second) = runs
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in second["trials"]]
    assert first["rungs"] == second["rungs"]
    assert [(t["status"], t["epochs_run"], t["best"]) for t in first["trials"]] == \
        [(t["status"], t["epochs_run"], t["best"]) for t in second["trials"]]
    assert first["sweep"]["best"]["params"] == second["sweep"]["best"]["params"]
    a = best_weights(b, first["sweep"]["best"]["job_id"])
    c = best_weights(b, second["sweep"]["best"]["job_id"])
    assert a.tobytes() == c.tobytes()


def fail_job(b: Backend, job_id: str) -> None:
    with b.sessions.begin() as s:
        s.execute(sa.update(Job).where(Job.id == job_id).values(
            status="failed", failure_reason="boom", attempts=1))


def test_a_failed_trial_is_retried_then_counted_and_the_sweep_goes_on(
        sqlite_backend: Backend) -> None:
    b = sqlite_backend
    sweep_id = create_sweep(b, sweep_body(
        search={"method": "grid", "max_concurrent": 1},
        space={"model.layers[0].units": {"choice": [4, 8]}}, scheduler=None))
    queue = Queue()
    run_step(queue, b.sessions, b.settings, sweep_id)
    assert [n for n, _ in queue.sent] == [TRAIN_TASK]
    first = queue.sent.pop()[1]
    fail_job(b, first)                      # attempt 1 fails: retried as a new job
    run_step(queue, b.sessions, b.settings, sweep_id)
    second = queue.sent.pop()[1]
    assert second != first and queue.sent == []
    fail_job(b, second)                     # attempt 2 fails: max_retries 1, stays failed
    drive(b, sweep_id, queue=queue)
    got = outcome(b, sweep_id)
    assert got["sweep"]["status"] == "succeeded"
    assert got["sweep"]["trials"] == {"total": 2, "queued": 0, "running": 0, "succeeded": 1,
                                      "pruned": 0, "failed": 1}
    assert [(t["index"], t["status"], t["attempts"]) for t in got["trials"]] == [
        (0, "failed", 2), (1, "succeeded", 1)]
    assert got["sweep"]["best"]["trial"] == 1


def test_a_duplicate_step_starts_nothing_twice(postgres_backend: Backend) -> None:
    b = postgres_backend
    sweep_id = create_sweep(b, sweep_body())
    queues = [Queue() for _ in range(4)]
    threads = [threading.Thread(target=run_step, args=(q, b.sessions, b.settings, sweep_id))
               for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = [job for q in queues for _, job in q.sent]
    assert len(sent) == len(set(sent)) == 2  # max_concurrent, once each
    with b.sessions() as s:
        assert [t.trial_index for t in sweeps.trials(s, sweep_id)] == [0, 1]
        assert s.scalar(sa.select(sa.func.count()).select_from(Job)
                        .where(Job.sweep_id == sweep_id)) == 2


def test_trials_count_against_the_tenant_job_quota(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    from dataclasses import replace

    b.settings = replace(b.settings, limits=replace(b.settings.limits, max_concurrent_jobs=1))
    sweep_id = create_sweep(b, sweep_body())
    queue = Queue()
    run_step(queue, b.sessions, b.settings, sweep_id)
    assert len(queue.sent) == 1  # max_concurrent 2, but one job fills the quota
    drive(b, sweep_id, queue=queue)
    assert outcome(b, sweep_id)["sweep"]["trials"]["total"] == 6


def test_cancel_stops_running_trials_and_ends_the_sweep_cancelled(
        sqlite_backend: Backend) -> None:
    b = sqlite_backend
    sweep_id = create_sweep(b, sweep_body())
    queue = Queue()
    run_step(queue, b.sessions, b.settings, sweep_id)
    with b.sessions.begin() as s:
        sweeps.request_cancel(s, sweep_id)
    run_step(queue, b.sessions, b.settings, sweep_id)  # before the trials' messages arrive
    drive(b, sweep_id, queue=queue)
    got = outcome(b, sweep_id)
    assert got["sweep"]["status"] == "cancelled"
    assert got["sweep"]["trials"]["total"] == 2  # no trial started after the cancel
    assert {j.status for j in got["jobs"].values()} == {"cancelled"}
    assert {t["status"] for t in got["trials"]} == {"cancelled"}


def test_a_spent_time_budget_starts_nothing_and_ends_succeeded(
        sqlite_backend: Backend) -> None:
    b = sqlite_backend
    sweep_id = create_sweep(b, sweep_body(time_budget_s=3600))
    queue = Queue()
    run_step(queue, b.sessions, b.settings, sweep_id)
    with b.sessions.begin() as s:
        s.execute(sa.update(Sweep).where(Sweep.id == sweep_id).values(
            deadline_at=utcnow() - timedelta(seconds=1)))
    run_step(queue, b.sessions, b.settings, sweep_id)  # before the trials' messages arrive
    drive(b, sweep_id, queue=queue)
    got = outcome(b, sweep_id)
    assert (got["sweep"]["status"], got["sweep"]["stop_reason"]) == ("succeeded",
                                                                    "time_budget")
    assert got["sweep"]["trials"]["total"] == 2
    with b.sessions() as s:
        ended = s.scalars(sa.select(SweepTrial.outcome).where(SweepTrial.sweep_id == sweep_id))
        assert set(ended) == {"cancelled"}


def test_a_trial_whose_job_was_deleted_ends_cancelled_and_the_sweep_goes_on(
        sqlite_backend: Backend) -> None:
    b = sqlite_backend
    sweep_id = create_sweep(b, sweep_body(scheduler=None))
    queue = Queue()
    run_step(queue, b.sessions, b.settings, sweep_id)
    gone = queue.sent.pop(0)[1]
    with b.sessions.begin() as s:
        s.execute(sa.delete(Job).where(Job.id == gone))
    drive(b, sweep_id, queue=queue)
    got = outcome(b, sweep_id)
    assert got["sweep"]["status"] == "succeeded"
    assert [t["status"] for t in got["trials"]].count("cancelled") == 1
    assert got["sweep"]["trials"]["total"] == 6


def test_the_step_after_a_trial_runs_in_its_task_and_is_sent_when_it_fails(
        sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import sweep_controller
    from worker.celery_app import SWEEP_STEP_TASK
    from worker.runner import JobRunner
    from worker.sweep_tasks import after_job

    b = sqlite_backend
    sweep_id = create_sweep(b, sweep_body(search={"method": "random", "seed": 1,
                                                  "max_trials": 3, "max_concurrent": 1}))
    queue = Queue()
    [first] = run_step(queue, b.sessions, b.settings, sweep_id)
    assert JobRunner(b.sessions, b.settings, first, "w1").run() == "succeeded"
    queue.sent.clear()
    assert after_job(queue, b.sessions, b.settings, first) == sweep_id
    # the next trial was dispatched by the trial's own task: no step message in between
    [(name, second)] = queue.sent
    assert name == TRAIN_TASK and second != first
    assert after_job(queue, b.sessions, b.settings, "job_not_a_trial") is None

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("database blip")

    assert JobRunner(b.sessions, b.settings, second, "w1").run() == "succeeded"
    queue.sent.clear()
    monkeypatch.setattr(sweep_controller, "step", broken)
    assert after_job(queue, b.sessions, b.settings, second) == sweep_id
    assert queue.sent == [(SWEEP_STEP_TASK, sweep_id)]  # reconcile would find it too
