"""Epochs waiting to be committed, and the checkpoints among them the policy would keep.

A small model trains an epoch in milliseconds while a commit of metrics, an event and a
checkpoint costs tens of milliseconds of Python in SQLAlchemy, so committing every epoch on
its own would make the worker several times slower than the bare core (issue 3 asks for
0.95x). The runner therefore commits at most once per ``commit_interval_s`` (the setting
``WEIGHTSMITH_COMMIT_INTERVAL_S``, default 2 s): epochs longer
than that still get one transaction each; shorter ones are committed together, in order, and a
crash loses at most that interval (plus the epochs since the last kept checkpoint, as always).

Only checkpoints that can survive the policy are kept in memory and written: the pending ones
are trimmed with the same function that prunes the stored ones (core.checkpoint_policy.kept),
which keeps of the pending what it would keep of all. An epoch's state is copied when
it ends (``EpochReport.deferred_checkpoint``) and serialised only at the commit, for the
checkpoints still kept then: early in training most epochs are a new best, and serialising
each one cost the training loop a few percent. A periodic checkpoint that enough later epochs
will surely push out before the next commit is not even copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config.settings import DEFAULT_COMMIT_INTERVAL_S
from core.checkpoint_policy import PERIODIC, kept, kinds_to_write
from core.spec import CheckpointPolicy
from store.columns import utcnow
from worker import store_ops


@dataclass
class PendingEpoch:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    is_best: bool
    kinds: list[str]
    checkpoint: Callable[[], bytes] | None  # serialises the epoch's state, at the commit
    ended_at: datetime  # its "epoch" event's time: when it ended, not when it was committed
    diagnostics: list[dict[str, Any]] | None = None  # core.diagnostics' rows, when switched on


@dataclass(frozen=True, eq=False)
class Held:
    """One kind of checkpoint of a pending epoch, as the policy weighs it."""

    pending: PendingEpoch
    kind: str

    @property
    def epoch(self) -> int:
        return self.pending.epoch

    @property
    def metrics(self) -> dict[str, float]:
        return self.pending.metrics


@dataclass
class EpochBuffer:
    """Collects reports between commits; ``flush(s)`` writes them inside the caller's session.

    ``tenant_id`` and ``model_spec`` (the runner's, from its claim) let the checkpoints of a
    commit go to the store in one batched INSERT without looking the job up; without them the
    store reads them from the job row once per commit.
    """

    job_id: str
    policy: CheckpointPolicy
    tenant_id: str | None = None
    model_spec: dict[str, Any] | None = None
    commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S
    pending: list[PendingEpoch] = field(default_factory=list)
    # The checkpoints the pending epochs still hold, oldest first: at most keep_last +
    # keep_best after each trim, so an epoch costs the same however many epochs wait for
    # the commit (~250/s on digits).
    held: list[Held] = field(default_factory=list)

    def add(self, report: Any, *, since_commit: float, committing: bool) -> None:
        """Take the epoch; ``committing`` says a flush follows right away."""
        epoch, is_best = int(report.epoch), bool(report.is_best)
        kinds = list(kinds_to_write(self.policy, epoch, is_best))
        if PERIODIC in kinds and not committing and self._surely_trimmed(report,
                                                                          since_commit):
            kinds.remove(PERIODIC)
        # The state moves on after the callback: copy it now, serialise it at the commit.
        checkpoint = report.deferred_checkpoint() if kinds else None
        pending = PendingEpoch(epoch, int(report.epochs), dict(report.metrics), is_best, kinds,
                               checkpoint, utcnow(), getattr(report, "diagnostics", None))
        self.pending.append(pending)
        self.held.extend(Held(pending, kind) for kind in kinds)
        if kinds:
            self._trim()

    def detach(self) -> EpochBuffer:
        """Hand the pending epochs to a new buffer (to flush elsewhere) and start empty.

        The checkpoint policy's in-memory state is exactly the pending epochs and their
        holders, so the two buffers share nothing: one thread may flush the detached batch
        while another keeps adding epochs to this one.
        """
        batch = EpochBuffer(self.job_id, self.policy, self.tenant_id, self.model_spec,
                            self.commit_interval_s, self.pending, self.held)
        self.pending = []
        self.held = []
        return batch

    def _surely_trimmed(self, report: Any, since_commit: float) -> bool:
        """Will ``keep_last`` more periodic epochs come before the next commit? Then this
        epoch's periodic checkpoint would be pruned anyway: skip serialising it.

        Judged from this epoch's duration, with a 2x margin; the last ``keep_last`` epochs of
        the run and any epoch that triggers a commit are always kept, so every commit carries
        the newest epoch's checkpoint (the resume point a crash falls back to).
        """
        keep = self.policy.keep_last * self.policy.every_epochs
        if int(report.epoch) > int(report.epochs) - keep:
            return False
        seconds = float(report.metrics.get("seconds", 0.0))
        return since_commit + 2.0 * keep * seconds < self.commit_interval_s

    def _trim(self) -> None:
        """Forget checkpoints that newer or better pending ones push out of the policy."""
        keep = kept(self.policy, self.held)
        if len(keep) == len(self.held):
            return
        for dropped in set(self.held).difference(keep):
            dropped.pending.kinds.remove(dropped.kind)
            if not dropped.pending.kinds:
                dropped.pending.checkpoint = None
        self.held = keep

    def flush(self, s: Session, final: tuple[int, bytes, dict[str, float]] | None = None,
              *, max_stored_bytes: int | None = None) -> bool:
        """Write every pending epoch in order, then apply the checkpoint policy once.

        ``final`` (epoch, blob, metrics) adds the run's "final" checkpoint to the same batch,
        so the last commit lists and prunes the job's checkpoints once, not twice.

        With ``max_stored_bytes`` (the tenant's quota) the checkpoints are written and pruned
        in a savepoint, and rolled back if the tenant's stored bytes are then over it: the
        epochs are recorded, the job's earlier checkpoints stay, and False says so.
        """
        if not self.pending and final is None:
            return True
        best: dict[str, Any] | None = None
        if self.pending:
            store_ops.record_epochs(s, self.job_id,
                                    [(p.epoch, p.epochs, p.metrics) for p in self.pending],
                                    times=[p.ended_at for p in self.pending])
            store_ops.record_diagnostics(s, self.job_id, [
                (p.epoch, p.diagnostics) for p in self.pending if p.diagnostics is not None])
        items: list[tuple[int, str, bytes, dict[str, float]]] = []
        for p in self.pending:
            if p.is_best:
                best = {"epoch": p.epoch, **p.metrics}
            if p.kinds:
                assert p.checkpoint is not None
                blob = p.checkpoint()
                items.extend((p.epoch, kind, blob, p.metrics) for kind in p.kinds)
        if final is not None:
            items.append((final[0], "final", final[1], final[2]))
        if self.pending:
            last = self.pending[-1]
            store_ops.update_progress(s, self.job_id, last.epoch, last.metrics, best)
        written = self._write_checkpoints(s, items, max_stored_bytes)
        self.pending.clear()
        self.held.clear()
        return written

    def _write_checkpoints(self, s: Session, items: list[tuple[int, str, bytes,
                                                                dict[str, float]]],
                           max_stored_bytes: int | None) -> bool:
        if not items:
            return True
        if max_stored_bytes is None:
            store_ops.save_checkpoints(s, self.job_id, items, tenant_id=self.tenant_id,
                                       model_spec=self.model_spec)
            store_ops.apply_policy(s, self.job_id, self.policy)
            return True
        # After the policy's pruning, not before: a job that replaces one checkpoint by
        # another of the same size never passes a quota it was under.
        savepoint = s.begin_nested()
        try:
            store_ops.save_checkpoints(s, self.job_id, items, tenant_id=self.tenant_id,
                                       model_spec=self.model_spec)
            store_ops.apply_policy(s, self.job_id, self.policy)
            over = store_ops.stored_bytes(s, self.job_id, self.tenant_id) > max_stored_bytes
        except BaseException:
            savepoint.rollback()
            raise
        if over:
            savepoint.rollback()
            return False
        savepoint.commit()
        return True
