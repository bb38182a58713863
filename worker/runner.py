"""The bridge from the core's training callbacks to the store (docs/reliability.md).

One :class:`JobRunner` runs one delivery of ``train_job(job_id)``:

1. claim the job in one UPDATE (store.claims.claim_job) or return ``"skipped"``: a duplicated
   message never runs a job twice at once;
2. past ``settings.max_attempts`` claims, fail the job with ``"exceeded N attempts"``;
3. load the spec, the dataset, and the latest checkpoint (resume) or the ``init_checkpoint``'s
   weights (warm start); a SpecError/DatasetError/CheckpointError fails the job for good;
4. run ``core.train`` on the spec with ``max_runtime_s`` = what is left of
   ``settings.limits.max_runtime_s`` (:meth:`JobRunner.runtime_budget_s`; the spec's own
   ``training.max_runtime_s`` applies if tighter), so that the core's clean ``max_runtime``
   stop (a final checkpoint kept) comes before Celery's soft time limit, which stays a
   backstop. The cap is a keyword, not a change to the spec: checkpoints record the spec, and
   the same job must give the same bytes whenever it runs. ``should_stop`` (between batches)
   reads the cancel flag and the lease owner every ``POLL_S`` and writes the heartbeat every
   ``heartbeat_interval_s``, each in its own short transaction; ``on_epoch`` hands the epoch to
   an :class:`EpochBuffer` whose metrics, events, progress and checkpoints are committed in ONE
   transaction per epoch, or per ``settings.commit_interval_s`` for shorter epochs, after a
   heartbeat proving the lease. That commit runs on a writer thread while training goes on
   (each epoch's state was copied when it ended, so what is written does not depend on when):
   at most one commit is in flight, the next epoch batch waits for it, and its error (a lost
   lease, a database failure) surfaces in the training thread at that point;
5. wait for the commit in flight, then commit what is pending with the ``final`` checkpoint
   and the end status (succeeded / cancelled / failed), together.

A lost lease (another worker took the job over after our heartbeat went stale) ends the run
without writing anything more: the new owner continues from the latest checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.lr_range_test import STOP_REASONS as RANGE_TEST_STOPS
from core.lr_range_test import RangeTest
from core.spec import CheckpointPolicy
from store.db import single_statements
from worker import store_ops, sweep_controller
from worker.epoch_buffer import EpochBuffer

# How often should_stop reads the cancel flag: short, so cancel lands within about one batch
# on real workloads, without a database round trip per batch of a tiny model.
POLL_S = 0.2
SUCCESS_REASONS = frozenset({"epochs_done", "early_stopping", "max_runtime", "pruned",
                             *RANGE_TEST_STOPS})
# A learning-rate range test (core/lr_range_test.py) runs with this policy and no final
# checkpoint: it stores no weights, only its series (store/lr_range_tests.py).
NO_CHECKPOINTS = CheckpointPolicy(keep_last=0, keep_best=0)
# stop_reason "quota": a checkpoint would take the tenant past limits.max_stored_bytes; the
# job fails (resumable once space is freed) and keeps the checkpoints it had.


class LeaseLost(Exception):
    """Another worker owns the job now; stop without writing."""


@dataclass
class Inputs:
    """Everything core.train needs, loaded while the job is claimed."""

    spec: Any
    X: Any
    y: Any
    resume: bytes | None
    init_params: dict[str, Any] | None


def default_train(spec: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    from core.training import train

    return train(spec, X, y, **kwargs)


def default_estimate(spec: Any, X: Any, settings: Settings) -> int:
    """The job's estimated training memory in bytes, after checking it against the budgets
    of the day (they may have changed since the job was submitted): a BudgetError fails it."""
    from core.budget import Budget, check_job
    from core.dryrun import dry_run

    report = dry_run(spec, tuple(int(n) for n in X.shape[1:]), int(X.shape[0]))
    return check_job(spec, report, Budget.of(settings.limits)).total


def default_data(s: Session, claimed: store_ops.Claimed,
                 settings: Settings) -> tuple[Any, Any, Any]:
    """(spec, X, y) of a claimed job: the parsed spec and its dataset's arrays."""
    from core.spec import Spec

    spec = Spec.from_dict(claimed.spec)
    X, y = store_ops.load_dataset(s, claimed, settings)
    return spec, X, y


class JobRunner:
    """Run one claimed delivery of a job; ``run()`` returns the outcome as a word."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, job_id: str,
                 worker_id: str, *, train_fn: Callable[..., Any] = default_train,
                 data_fn: Callable[..., tuple[Any, Any, Any]] = default_data,
                 estimate_fn: Callable[[Any, Any, Settings], int] | None = default_estimate,
                 limit_memory: Callable[[int], AbstractContextManager[int]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions = sessions
        self.settings = settings
        self.job_id = job_id
        self.worker_id = worker_id
        self.train_fn = train_fn
        self.data_fn = data_fn
        self.estimate_fn = estimate_fn
        # An address-space limit for the training (worker/memory_limit.py); only a process
        # that runs one job at a time may set one, so the Celery task passes it.
        self.limit_memory = limit_memory
        self.estimate: int | None = None
        self.memory_limit: int | None = None
        self.clock = clock
        self._started = 0.0  # time.monotonic() when run() began: the delivery's budget starts
        self._last_beat = 0.0
        self._last_poll = 0.0
        self._last_commit = 0.0
        self._next_check = 0.0  # self.clock() before which should_stop need not look
        with sessions() as s:  # polls run on the engine's connections, outside any session
            bind = s.get_bind()
        self._reads = single_statements(bind if isinstance(bind, Engine) else bind.engine)
        self._poll_conn: Connection | None = None  # held for the run: see _poll
        self._stop: str | None = None  # "cancelled", "lease_lost" or "pruned" once seen
        # a sweep trial under ASHA: its rungs are committed at once and decided in the commit
        self.plan: sweep_controller.TrialPlan | None = None
        # a learning-rate range test: the per-batch hook whose series the job ends with
        self.range_test: RangeTest | None = None
        self.buffer: EpochBuffer | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None

    # -- the steps -------------------------------------------------------------------------

    def run(self) -> str:
        self._started = time.monotonic()
        with self.sessions.begin() as s:
            claimed = store_ops.claim(s, self.job_id, self.worker_id, self.settings)
        if claimed is None:
            return "skipped"
        if claimed.attempts > self.settings.max_attempts:
            reason = f"exceeded {self.settings.max_attempts} attempts"
            if claimed.last_error:
                reason += f"; last error: {claimed.last_error}"
            self._finish("failed", None, reason)
            return "failed"
        self._last_beat = self._last_poll = self.clock()
        try:
            inputs = self._load(claimed)
            if self.estimate_fn is not None:
                self.estimate = self.estimate_fn(inputs.spec, inputs.X, self.settings)
        except store_ops.PERMANENT_ERRORS as exc:
            self._finish("failed", None, f"{type(exc).__name__}: {exc}")
            return "failed"
        policy = inputs.spec.checkpoints if self.range_test is None else NO_CHECKPOINTS
        self.buffer = EpochBuffer(self.job_id, policy,
                                  tenant_id=claimed.tenant_id,
                                  model_spec=claimed.spec.get("model"),
                                  commit_interval_s=self.settings.commit_interval_s)
        self._last_commit = self.clock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"commit-{self.job_id}")
        # Start the commit thread now, outside the job's memory limit: a thread's stack
        # and malloc arena would otherwise count against the job, and a thread that cannot
        # start is a RuntimeError, not the MemoryError that fails the job with its reason.
        self._writer.submit(int).result()
        try:
            return self._train(inputs)
        finally:
            self._writer.shutdown(wait=True)  # never leave a commit running past the task
            self._drop_poll_connection()

    def runtime_budget_s(self) -> float:
        """What is left of ``settings.limits.max_runtime_s`` for this delivery.

        Celery's soft limit (the same cap plus ``soft_limit_margin_s``) counts real time from
        the start of the task, so the claim and the loading already done here count too; the
        margin is left for what the core's stop cannot cut short (its setup, the batch in
        progress, the final commit). Real time, not ``self.clock`` (which only paces
        heartbeats and polls), because Celery's timer is real.

        Resumes: every delivery gets the whole cap again, as it gets a fresh Celery timer, and
        as the core already treats a spec's own ``max_runtime_s`` (from the start of each run,
        not summed over a checkpoint's history). A retry after a crash or a lost worker is
        bounded by ``settings.max_attempts``; a user's resume of a cancelled or failed job
        is a new run. A job stopped by this cap ends ``succeeded`` with stop_reason
        ``max_runtime``, like one stopped by its own budget.
        """
        elapsed = time.monotonic() - self._started
        return max(float(self.settings.limits.max_runtime_s) - elapsed, 0.0)

    def _memory_limit(self) -> AbstractContextManager[int | None]:
        if self.limit_memory is None or self.estimate is None:
            return nullcontext(None)
        from worker.memory_limit import job_limit

        return self.limit_memory(job_limit(self.estimate,
                                           self.settings.job_memory_headroom_bytes))

    def _train(self, inputs: Inputs) -> str:
        try:
            with self._memory_limit() as limit:
                self.memory_limit = limit
                result = self.train_fn(
                    inputs.spec, inputs.X, inputs.y, init_params=inputs.init_params,
                    resume=inputs.resume, on_epoch=self.on_epoch, should_stop=self.should_stop,
                    max_runtime_s=self.runtime_budget_s(), **self._run_options(),
                    overwrite_inputs=True,  # this delivery's own arrays, read for it alone
                )
            self._wait_for_commit()
        except LeaseLost:
            return "lease_lost"
        except MemoryError as exc:  # past the limit (restored by now): retrying cannot help
            if self._stop == "lease_lost" or not self._settle():
                return "lease_lost"
            self._finish("failed", None, self._memory_reason(exc))
            return "failed"
        except store_ops.PERMANENT_ERRORS as exc:  # e.g. a checkpoint of another shape
            if self._stop == "lease_lost" or not self._settle():
                return "lease_lost"
            self._finish("failed", None, f"{type(exc).__name__}: {exc}")
            return "failed"
        except BaseException:
            self._settle()
            raise
        if self._stop == "lease_lost":
            return "lease_lost"
        return self._conclude(result)

    def _run_options(self) -> dict[str, Any]:
        """A range test sets each batch's rate and expects the loss to blow up: the
        divergence guard would end it as a failure at the first epoch it reaches."""
        if self.range_test is not None:
            return {"batch_lr": self.range_test.rate, "divergence_factor": None}
        return {"divergence_factor": self.settings.divergence_factor}

    def _memory_reason(self, exc: MemoryError) -> str:
        from core.budget import show_bytes

        reason = "MemoryError: the job ran out of memory"
        if self.memory_limit is not None and self.estimate is not None:
            reason += (f" under its limit of {show_bytes(self.memory_limit)} (estimated "
                       f"training memory {show_bytes(self.estimate)}; the estimate was wrong)")
        return f"{reason}: {exc}" if str(exc) else reason

    def _load(self, claimed: store_ops.Claimed) -> Inputs:
        with self.sessions() as s:
            spec, X, y = self.data_fn(s, claimed, self.settings)
            resume = store_ops.latest_checkpoint_blob(s, self.job_id)
            init_params = None
            if resume is None:  # a first run: a fork starts from its parent's checkpoint
                resume, init_params = store_ops.fork_start(s, self.job_id)
            # A resumed run carries its own weights; the warm start only seeds the first run.
            if resume is None and init_params is None:
                init_params = store_ops.init_params(s, claimed)
            self.plan = sweep_controller.trial_plan(s, self.job_id)
            self.range_test = store_ops.range_test(s, self.job_id)
        if self.plan is not None and self.plan.pruned_at is not None:
            self._stop = "pruned"  # decided before a crash: end where the checkpoint is
        return Inputs(spec, X, y, resume, init_params)

    def _conclude(self, result: Any) -> str:
        """Save the final checkpoint and the end status together, if the lease is still ours."""
        reason = "quota" if self._stop == "quota" else str(result.stop_reason)
        if reason == "cancelled" and self._stop == "pruned":
            reason = "pruned"
        test = self.range_test
        if test is not None:
            reason = test.finished(reason)
        if reason in SUCCESS_REASONS:
            status, failure = "succeeded", None
        elif reason == "cancelled":
            status, failure = "cancelled", None
        elif reason == "quota":
            status, failure = "failed", self._quota_reason()
        else:
            status, failure = "failed", getattr(result, "failure", None) or reason
        try:
            with self.sessions.begin() as s:
                # The heartbeat UPDATE first: it locks the job row until this commit, so no
                # take-over can slip in between the check and the writes.
                if store_ops.beat(s, self.job_id, self.worker_id) == "lease_lost":
                    raise LeaseLost(self.job_id)
                assert self.buffer is not None
                final = None
                if test is not None:
                    store_ops.record_range_test(s, self.job_id, test)
                elif reason not in ("diverged", "quota"):
                    final = (int(result.state.epoch), result.checkpoint(),
                             result.weights_metrics)
                quota = self.settings.limits.max_stored_bytes
                if not self.buffer.flush(s, final, max_stored_bytes=quota):
                    status, reason, failure = "failed", "quota", self._quota_reason()
                if not store_ops.finish(s, self.job_id, self.worker_id, status, reason,
                                        failure):
                    raise LeaseLost(self.job_id)
        except LeaseLost:
            return "lease_lost"
        return status

    def _quota_reason(self) -> str:
        return (f"the next checkpoint would take the tenant past its storage quota of "
                f"{self.settings.limits.max_stored_bytes:,} bytes; the job stopped and kept its "
                "last checkpoint: delete jobs, checkpoints or datasets, then resume it")

    def _finish(self, status: str, stop_reason: str | None, failure: str | None) -> None:
        with self.sessions.begin() as s:
            store_ops.finish(s, self.job_id, self.worker_id, status, stop_reason, failure)

    # -- the core's callbacks --------------------------------------------------------------

    def should_stop(self) -> bool:
        """Between batches: True once the job is cancelled or the lease is gone."""
        if self._stop is not None:
            return True
        now = self.clock()
        if now < self._next_check:  # the common case, once per batch: keep it to one compare
            return False
        if now - self._last_beat >= self.settings.heartbeat_interval_s:
            self._last_beat = self._last_poll = now
            with self.sessions.begin() as s:
                self._stop = store_ops.beat(s, self.job_id, self.worker_id)
        elif now - self._last_poll >= POLL_S:
            self._last_poll = now
            self._stop = self._poll()
        self._next_check = min(self._last_poll + POLL_S,
                               self._last_beat + self.settings.heartbeat_interval_s)
        return self._stop is not None

    def _poll(self) -> str | None:
        """The cancel flag and the lease, read on a connection the run holds.

        Checking one out of the pool for every poll added the pool's ping: a second round
        trip, after which the training thread waited for the GIL once more (the commit
        thread often holds it). A connection the database has dropped is replaced once, as
        the ping would have done. The read's transaction ends at once: on SQLite its BEGIN
        IMMEDIATE holds the write lock the commit thread needs.
        """
        for attempt in (1, 2):
            if self._poll_conn is None:
                self._poll_conn = self._reads.connect()
            try:
                stop = store_ops.poll(self._poll_conn, self.job_id, self.worker_id)
                self._poll_conn.rollback()
                return stop
            except DBAPIError as exc:
                self._drop_poll_connection()
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _drop_poll_connection(self) -> None:
        if self._poll_conn is not None:
            conn, self._poll_conn = self._poll_conn, None
            conn.close()

    def on_epoch(self, report: Any) -> None:
        """Buffer the epoch; commit what is pending once per ``settings.commit_interval_s``."""
        assert self.buffer is not None
        since_commit = self.clock() - self._last_commit
        rung = self.plan is not None and int(report.epoch) in self.plan.rungs
        due = rung or since_commit >= self.settings.commit_interval_s
        self.buffer.add(report, since_commit=since_commit, committing=due)
        if due:
            self._commit_pending()
        if rung:  # the decision lands before the next batch: a pruned trial stops right here
            self._wait_for_commit()

    def _commit_pending(self) -> None:
        """Hand the pending epochs to the writer thread, after the previous commit landed."""
        assert self.buffer is not None and self._writer is not None
        self._wait_for_commit()
        self._in_flight = self._writer.submit(self._commit, self.buffer.detach())
        self._last_commit = self._last_beat = self._last_poll = self.clock()

    def _commit(self, batch: EpochBuffer) -> None:
        """One transaction: heartbeat (lease proof and row lock), epochs, checkpoints, policy."""
        with self.sessions.begin() as s:
            stop = store_ops.beat(s, self.job_id, self.worker_id)
            if stop == "lease_lost":
                self._stop = stop
                raise LeaseLost(self.job_id)
            self._stop = self._stop or stop
            rungs = [] if self.plan is None else [
                (p.epoch, p.metrics) for p in batch.pending if p.epoch in self.plan.rungs]
            if not batch.flush(s, max_stored_bytes=self.settings.limits.max_stored_bytes):
                self._stop = self._stop or "quota"  # should_stop ends training at once
            for epoch, metrics in rungs:
                assert self.plan is not None
                if not sweep_controller.report_rung(s, self.plan, epoch, metrics):
                    self._stop = self._stop or "pruned"

    def _wait_for_commit(self) -> None:
        """Block until the commit in flight is done; re-raise its error here."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _settle(self) -> bool:
        """Wait for the commit in flight when training already failed; False if the lease
        was lost (the failure is then the new owner's to handle, not ours to record)."""
        try:
            self._wait_for_commit()
        except LeaseLost:
            return False
        except Exception:  # the training error that brought us here is the one to report
            pass
        return True
