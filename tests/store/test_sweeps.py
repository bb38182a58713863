"""store.sweeps: each decision is one conditional statement, taken once."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from store import sweeps
from store.errors import Conflict
from store.models import SweepRung
from tests.store.conftest import make_job, make_tenant

BODY = {"search": {"max_trials": 3, "max_concurrent": 1}}


def new_sweep(s: Session, key: str | None = None, body_hash: str = "h") -> str:
    tenant = make_tenant(s)
    sweep, _ = sweeps.create(s, tenant.id, BODY, name="sw", idempotency_key=key,
                             request_hash=body_hash, deadline_at=None)
    return sweep.id


def test_create_is_idempotent_by_key_and_conflicts_on_another_body(s: Session) -> None:
    first = new_sweep(s, "k")
    tenant = make_tenant(s)
    again, created = sweeps.create(s, tenant.id, BODY, name="sw", idempotency_key="k",
                                   request_hash="h", deadline_at=None)
    assert (again.id, created) == (first, False)
    with pytest.raises(Conflict):
        sweeps.create(s, tenant.id, BODY, name="sw", idempotency_key="k", request_hash="x",
                      deadline_at=None)
    assert [e.type for e in sweeps.events_after(s, first, 0)] == ["status"]


def test_a_trial_index_is_taken_once(s: Session) -> None:
    sweep_id = new_sweep(s)
    assert sweeps.claim_index(s, sweep_id, 0) is True
    assert sweeps.claim_index(s, sweep_id, 0) is False  # a duplicate step
    assert sweeps.claim_index(s, sweep_id, 2) is False  # not the next one
    assert sweeps.claim_index(s, sweep_id, 1) is True
    assert sweeps.lock(s, sweep_id).trials_created == 2  # type: ignore[union-attr]


def test_a_trial_ends_once_and_ends_are_numbered(s: Session) -> None:
    sweep_id = new_sweep(s)
    tenant = make_tenant(s)
    jobs = [make_job(s, tenant.id).id for _ in range(3)]
    for i, job in enumerate(jobs[:2]):
        sweeps.add_trial(s, sweep_id, i, {"p": i}, job)
    assert sweeps.record_end(s, sweep_id, 1, jobs[1], "succeeded", value=0.5, best_epoch=3,
                             epochs_run=5) == 1
    assert sweeps.record_end(s, sweep_id, 1, jobs[1], "succeeded", value=0.5, best_epoch=3,
                             epochs_run=5) is None
    # a failed attempt moves the trial to a new job, once; the old job's end no longer counts
    assert sweeps.retry_trial(s, sweep_id, 0, jobs[0], jobs[2]) is True
    assert sweeps.retry_trial(s, sweep_id, 0, jobs[0], jobs[2]) is False
    assert sweeps.record_end(s, sweep_id, 0, jobs[0], "failed", value=None, best_epoch=None,
                             epochs_run=0) is None
    assert sweeps.record_end(s, sweep_id, 0, jobs[2], "pruned", value=float("nan"),
                             best_epoch=1, epochs_run=1) == 2
    trials = sweeps.trials(s, sweep_id)
    assert [(t.outcome, t.end_seq, t.attempts, t.value) for t in trials] == [
        ("pruned", 2, 2, None), ("succeeded", 1, 1, 0.5)]
    assert sweeps.trial_of_job(s, jobs[0]) is None
    assert sweeps.trial_of_job(s, jobs[2]).trial_index == 0  # type: ignore[union-attr]


def test_a_rung_is_decided_once_in_report_order(s: Session) -> None:
    sweep_id = new_sweep(s)
    seen: list[list[int]] = []

    def decide(rows: list[SweepRung], new: SweepRung) -> bool:
        seen.append([r.trial_index for r in rows])
        return new.trial_index == 0

    assert sweeps.record_rung(s, sweep_id, 0, 1, 0.9, decide) == (True, True)
    assert sweeps.record_rung(s, sweep_id, 1, 1, 0.8, decide) == (False, True)
    assert sweeps.record_rung(s, sweep_id, 1, 1, 0.99, decide) == (False, False)  # a repeat
    assert seen == [[], [0]]
    assert [(r.seq, r.trial_index) for r in sweeps.decisions(s, sweep_id)] == [(1, 0), (2, 1)]
    assert sweeps.pruned_at(s, sweep_id, 1) == 1 and sweeps.pruned_at(s, sweep_id, 0) is None


def test_a_sweep_finishes_once(s: Session) -> None:
    sweep_id = new_sweep(s)
    assert sweeps.active_ids(s) == [sweep_id]
    assert sweeps.finish(s, sweep_id, "succeeded", None) is True
    assert sweeps.finish(s, sweep_id, "cancelled", "cancelled") is False
    assert sweeps.active_ids(s) == []
