"""Fault 5: a checkpoint write fails (the disk is full).

A PostgreSQL trigger on `checkpoints` raises SQLSTATE 53100 (disk_full, what PostgreSQL reports
when it cannot extend a file) in the first transaction that writes a checkpoint after one was
already committed: so there is always a previous checkpoint to keep intact, however many short
epochs the worker groups into one commit (it commits at most once a second). The worker writes
those epochs' metrics, progress, events and checkpoints in ONE transaction, so all of it rolls
back; the task releases the job for a retry that resumes from the last committed checkpoint.

- once (a transient full disk): the retry redoes the lost epochs and the job ends succeeded,
  bit for bit equal to an uninterrupted run;
- always (the disk stays full): the job fails after `max_attempts` with the disk error as its
  reason; the committed checkpoints are intact (sha256, loadable, equal to the reference's),
  and once space is back, `resume` finishes the job from them, again bit for bit.

"Committed by an earlier transaction" is a row whose xmin is below the current transaction id
(the worker writes checkpoints in a savepoint, whose subtransaction ids come after its own);
"once" counts with a sequence, as nextval is not rolled back with the transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from store import checkpoints
from store import events as store_events
from store import leases as store_leases
from store.statuses import TERMINAL_STATUSES as TERMINAL
from tests.reliability.compare import (
    assert_bit_identical,
    assert_checkpoints_sound,
    assert_metrics_match,
    builtin_arrays,
    final_checkpoint_blob,
    metric_rows,
)
from tests.reliability.conftest import BackendFactory
from tests.reliability.test_worker_crash import crash_spec
from tests.worker.conftest import Backend, create_job, resume, wait_for

EPOCHS = 30  # a few seconds: more than one commit of the worker

TRIGGER = """
CREATE SEQUENCE ckpt_fault_seq;
CREATE FUNCTION ckpt_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM checkpoints c WHERE c.job_id = NEW.job_id
             AND c.xmin::text::bigint < mod(txid_current(), 4294967296))
     AND ({always} OR nextval('ckpt_fault_seq') = 1) THEN
    RAISE EXCEPTION 'could not extend file: No space left on device (injected)'
      USING ERRCODE = 'disk_full';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER ckpt_fault BEFORE INSERT ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION ckpt_fault();
"""


def spec() -> dict[str, Any]:
    s = crash_spec(epochs=EPOCHS)
    s["checkpoints"]["keep_last"] = EPOCHS  # keep every periodic one, to inspect them all
    return s


def reference_run(spec: dict[str, Any]) -> tuple[bytes, dict[int, bytes]]:
    """The uninterrupted run's final checkpoint and each epoch's checkpoint."""
    from core import train

    per_epoch: dict[int, bytes] = {}

    def keep(report: Any) -> None:
        per_epoch[int(report.epoch)] = bytes(report.checkpoint())

    X, y = builtin_arrays(spec)
    return bytes(train(spec, X, y, on_epoch=keep).checkpoint()), per_epoch


def install_fault(b: Backend, *, always: bool) -> None:
    with b.sessions.begin() as s:
        s.connection().exec_driver_sql(
            TRIGGER.format(always="TRUE" if always else "FALSE"))


def assert_periodic_match(b: Backend, job_id: str, per_epoch: dict[int, bytes]) -> list[int]:
    """Every kept periodic checkpoint equals the reference run's of that epoch; the epochs."""
    with b.sessions() as s:
        rows = [r for r in checkpoints.list_for_job(s, job_id) if r.kind == "periodic"]
        for row in rows:
            blob = checkpoints.get_blob(s, row.id)
            assert blob is not None
            assert_bit_identical(bytes(blob), per_epoch[int(row.epoch)])
    return sorted(int(r.epoch) for r in rows)


def epoch_event_counts(b: Backend, job_id: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    with b.sessions() as s:
        for e in store_events.after(s, job_id, 0, limit=10_000):
            if e.type == "epoch":
                counts[int(e.data["epoch"])] = counts.get(int(e.data["epoch"]), 0) + 1
    return counts


def test_a_transient_checkpoint_write_failure_rolls_back_and_the_retry_recovers(
        production: BackendFactory) -> None:
    b = production()
    install_fault(b, always=False)
    final, per_epoch = reference_run(spec())
    b.start_worker("w1")
    b.start_beat()
    job_id = create_job(b, spec())
    b.send(job_id)

    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=180, what="the job")
    assert (job.status, job.epoch_done, job.attempts) == ("succeeded", EPOCHS, 2)
    with b.sessions() as s:
        held = store_leases.history(s, job_id)
        assert [h.outcome for h in held] == ["released", "succeeded"]
        failed_at, retried_from = held[0].released_at, held[1].claimed_at
        rows = checkpoints.list_for_job(s, job_id)
    # The failed transaction left nothing: every checkpoint is from before it or the retry ...
    assert all(r.created_at < failed_at or r.created_at >= retried_from for r in rows)
    assert any(r.created_at < failed_at for r in rows)
    # ... and every epoch's metrics and event exist once (the rolled-back ones never did).
    assert epoch_event_counts(b, job_id) == {e: 1 for e in range(1, EPOCHS + 1)}
    assert assert_metrics_match(b, job_id, final) == EPOCHS * 6
    assert assert_periodic_match(b, job_id, per_epoch) == list(range(1, EPOCHS + 1))
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), final) == 9
    assert ("final", EPOCHS) in assert_checkpoints_sound(b, job_id)


def test_a_full_disk_fails_the_job_with_the_reason_and_keeps_earlier_checkpoints(
        production: BackendFactory) -> None:
    b = production(max_attempts="2")
    install_fault(b, always=True)
    final, per_epoch = reference_run(spec())
    b.start_worker("w1")
    b.start_beat()
    job_id = create_job(b, spec())
    b.send(job_id)

    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=180, what="the job")
    print(f"failure_reason: {job.failure_reason}; epochs committed: {job.epoch_done}")
    done = job.epoch_done  # the last epoch committed before the failing transaction
    assert (job.status, job.attempts) == ("failed", 3) and 1 <= done < EPOCHS
    assert job.failure_reason.startswith("exceeded 2 attempts; last error: OperationalError")
    assert "No space left on device (injected)" in job.failure_reason
    with b.sessions() as s:
        outcomes = [h.outcome for h in store_leases.history(s, job_id)]
    assert outcomes == ["released", "released", "failed"]
    # Nothing of the failed epoch was stored; what came before is whole and usable.
    assert sorted({e for e, _, _ in metric_rows(b, job_id)}) == list(range(1, done + 1))
    assert epoch_event_counts(b, job_id) == {e: 1 for e in range(1, done + 1)}
    kept = assert_checkpoints_sound(b, job_id)
    assert max(e for _, e in kept) == done and "final" not in {k for k, _ in kept}
    assert assert_periodic_match(b, job_id, per_epoch) == list(range(1, done + 1))

    # Space is back: resuming continues from the intact checkpoint and matches bit for bit.
    with b.sessions.begin() as s:
        s.execute(sa.text("DROP TRIGGER ckpt_fault ON checkpoints"))
        resume(s, job_id)
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=180, what="the resume")
    assert (job.status, job.epoch_done) == ("succeeded", EPOCHS)
    assert assert_metrics_match(b, job_id, final) == EPOCHS * 6
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), final) == 9
