"""The tables: tenants, keys, datasets, jobs and what a job produces.

Ids are sortable strings (store/ids.py); timestamps are aware UTC; JSON columns are JSONB on
PostgreSQL; the bytes of a dataset, a checkpoint and an unfinished upload live in tables of
parts of their own, so listing rows never reads megabytes.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.columns import JSONType, UTCDateTime, utcnow
from store.ids import PREFIXES, new_id
from store.statuses import ACTIVE_JOBS_PREDICATE, JOB_STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHECKPOINT_KINDS = ("periodic", "best", "final", "imported")
ID = sa.String(40)


def _id(kind: str) -> Mapped[str]:
    """A primary key filled with a fresh sortable id, e.g. ``job_01JDX...``."""
    return mapped_column(ID, primary_key=True, default=partial(new_id, PREFIXES[kind]))


def _tenant_fk(index: bool = False) -> Mapped[str]:
    return mapped_column(sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=index)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = _id("tenant")
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = _id("api_key")
    tenant_id: Mapped[str] = _tenant_fk(index=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # sha256 hex of the key
    prefix: Mapped[str] = mapped_column(sa.String(16))  # shown in listings, useless to attackers
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (
        sa.Index("ix_datasets_tenant_created", "tenant_id", "created_at", "id"),
        # A spec names a dataset by id or by name (the newest with it), and an upload of
        # bytes the tenant already stored returns that dataset (revision 0008).
        sa.Index("ix_datasets_tenant_name", "tenant_id", "name", "created_at"),
        sa.Index("ix_datasets_tenant_sha256", "tenant_id", "sha256"),
    )

    id: Mapped[str] = _id("dataset")
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    format: Mapped[str] = mapped_column(sa.String(16))
    n_rows: Mapped[int]
    x_shape: Mapped[list[int]] = mapped_column(JSONType)
    y_shape: Mapped[list[int]] = mapped_column(JSONType)
    kind: Mapped[str] = mapped_column(sa.String(32))
    classes: Mapped[list[Any] | None] = mapped_column(JSONType)
    sha256: Mapped[str] = mapped_column(sa.String(64))  # of the uploaded bytes
    # the stored bytes (core.datasets.stored: X and y as .npy frames, in dataset_parts)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    builtin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        sa.UniqueConstraint("tenant_id", "idempotency_key"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_jobs_status", "status"),
        # The quota check counts a tenant's queued and running jobs on every submission
        # (store/submissions.py). Without this index PostgreSQL scanned all of the tenant's
        # jobs, finished ones included, or the whole table: 3.9 ms with 20,000 finished
        # jobs, against 0.03 ms through it (revision 0005).
        sa.Index(
            "ix_jobs_tenant_active", "tenant_id",
            postgresql_where=sa.text(ACTIVE_JOBS_PREDICATE),
            sqlite_where=sa.text(ACTIVE_JOBS_PREDICATE),
        ),
    )

    id: Mapped[str] = _id("job")
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    spec: Mapped[dict[str, Any]]
    # Jobs outlive the uploads they trained on: deleting a dataset keeps their results.
    dataset_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("datasets.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    stop_reason: Mapped[str | None] = mapped_column(sa.String(32))
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    epochs_total: Mapped[int]
    epoch_done: Mapped[int] = mapped_column(default=0)
    latest: Mapped[dict[str, Any] | None]
    best: Mapped[dict[str, Any] | None]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    request_hash: Mapped[str | None] = mapped_column(sa.String(64))
    event_seq: Mapped[int] = mapped_column(default=0)  # last JobEvent.seq handed out
    # a sweep's trial (store/sweeps.py); a job outlives nothing here: sweeps are never deleted
    sweep_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("sweeps.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)  # reconcile's clock for "queued"
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # core.diagnostics' warnings, oldest first (the worker adds them at its epoch commits;
    # revision 0017); NULL: none
    warnings: Mapped[list[Any] | None] = mapped_column(JSONType)


class Metric(Base):
    __tablename__ = "metrics"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # NULL for NaN/inf (a diverged epoch): SQLite cannot store NaN, JSON cannot carry it.
    value: Mapped[float | None] = mapped_column(sa.Float(precision=53))


class JobDiagnostics(Base):
    """One epoch's per-layer diagnostics (core.diagnostics): ``layers`` is the list of that
    epoch's rows, [{"layer", "type", "weight_norm", ...}], as the core made them (revision
    0017). One row per epoch, upserted like metrics: a re-run epoch overwrites."""

    __tablename__ = "job_diagnostics"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    layers: Mapped[list[Any]] = mapped_column(JSONType)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", CHECKPOINT_KINDS), name="kind"),
        sa.Index("ix_checkpoints_job_epoch", "job_id", "epoch"),
    )

    id: Mapped[str] = _id("checkpoint")
    job_id: Mapped[str | None] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = _tenant_fk(index=True)
    epoch: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    model_spec: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckpointPart(Base):
    """A checkpoint's bytes, in order, at most `store.checkpoint_parts.PART_BYTES` each.

    In parts rather than one column: PostgreSQL writes a 126 MB value at about half the
    speed of the same bytes as 1 MiB rows (store/checkpoint_parts.py says more).

    No foreign key to `checkpoints`: its check runs once per row, and a 126 MB checkpoint is
    16,000 rows (0.61 s against 0.41 s to COPY them). The trigger below deletes a
    checkpoint's parts with it instead, however the checkpoint goes (pruned, or with its job).
    """

    __tablename__ = "checkpoint_parts"

    checkpoint_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # from 0
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


# Revision 0004 creates the same; these are for `create_all` (tests, scratch databases).
# Row triggers, so that each delete finds its parts by the primary key's index: a statement
# trigger joining the deleted rows chose to scan the whole table (25-40 ms per worker commit).
DELETE_PARTS_POSTGRESQL = (
    "CREATE OR REPLACE FUNCTION delete_checkpoint_parts() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN DELETE FROM checkpoint_parts WHERE checkpoint_id = OLD.id; RETURN NULL; END $$",
    "CREATE TRIGGER checkpoints_delete_parts AFTER DELETE ON checkpoints FOR EACH ROW"
    " EXECUTE FUNCTION delete_checkpoint_parts()",
)
DELETE_PARTS_SQLITE = (
    "CREATE TRIGGER checkpoints_delete_parts AFTER DELETE ON checkpoints FOR EACH ROW"
    " BEGIN DELETE FROM checkpoint_parts WHERE checkpoint_id = OLD.id; END",
)


def _after_create_all(dialect: str, statements: tuple[str, ...]) -> None:
    for statement in statements:
        ddl = sa.DDL(statement)  # type: ignore[no-untyped-call]
        sa.event.listen(Base.metadata, "after_create", ddl.execute_if(dialect=dialect))


_after_create_all("postgresql", DELETE_PARTS_POSTGRESQL)
_after_create_all("sqlite", DELETE_PARTS_SQLITE)


class DatasetPart(Base):
    """A dataset's stored bytes in order, as checkpoint_parts holds a checkpoint's (revision
    0016): the same part size, PLAIN storage and a delete trigger instead of a foreign key."""

    __tablename__ = "dataset_parts"

    dataset_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # from 0
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


class Upload(Base):
    """A file arriving in pieces (`/v1/uploads`): its declared size counts against the
    tenant's storage quota until it becomes a dataset, is deleted or expires."""

    __tablename__ = "uploads"
    __table_args__ = (sa.Index("ix_uploads_expires_at", "expires_at"),)

    id: Mapped[str] = _id("upload")
    tenant_id: Mapped[str] = _tenant_fk(index=True)
    filename: Mapped[str | None] = mapped_column(sa.String(200))
    total_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    received_bytes: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class UploadPart(Base):
    """An upload's bytes received so far, in parts like dataset_parts'."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


# Revision 0016 creates the same for the two tables of parts above.
def delete_parts_statements(dialect: str, owner: str, parts: str, key: str) -> tuple[str, ...]:
    """The row trigger that deletes `owner`'s parts with it, as revision 0004's."""
    if dialect == "postgresql":
        return (f"CREATE OR REPLACE FUNCTION delete_{parts}() RETURNS trigger LANGUAGE plpgsql"
                f" AS $$ BEGIN DELETE FROM {parts} WHERE {key} = OLD.id; RETURN NULL; END $$",
                f"CREATE TRIGGER {owner}_delete_parts AFTER DELETE ON {owner} FOR EACH ROW"
                f" EXECUTE FUNCTION delete_{parts}()")
    return (f"CREATE TRIGGER {owner}_delete_parts AFTER DELETE ON {owner} FOR EACH ROW"
            f" BEGIN DELETE FROM {parts} WHERE {key} = OLD.id; END",)


PART_TABLES = (("datasets", "dataset_parts", "dataset_id"),
               ("uploads", "upload_parts", "upload_id"))
for _dialect in ("postgresql", "sqlite"):
    for _owner, _parts, _key in PART_TABLES:
        _after_create_all(_dialect, delete_parts_statements(_dialect, _owner, _parts, _key))


class JobEvent(Base):
    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # per job, from 1
    type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobLease(Base):
    """One row per claim: who held the job, from when to when, and how it ended."""

    __tablename__ = "job_leases"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    worker_id: Mapped[str] = mapped_column(sa.String(200))
    claimed_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(sa.String(32))  # succeeded/failed/.../lost/released
    # What the run ran on (worker/environment.py): versions, host, BLAS and its threads.
    environment: Mapped[dict[str, Any] | None]


class Webhook(Base):
    """A tenant's HTTP endpoint for events; `secret` signs every body (shown once, at creation)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = _id("webhook")
    tenant_id: Mapped[str] = _tenant_fk(index=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    secret: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one webhook: the outbox row written with the change it reports.

    The body is fixed when the event happens (so every retry sends the same bytes, and the
    receiver's dedup by `event_id` holds); `next_attempt_at` is when it is due, so a lost
    Celery message or a worker killed mid-retry is picked up again by `reconcile`.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at",
                 postgresql_where=sa.text("state = 'pending'"),
                 sqlite_where=sa.text("state = 'pending'")),
    )

    id: Mapped[str] = _id("delivery")
    webhook_id: Mapped[str] = mapped_column(
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[str] = mapped_column(sa.String(40))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    body: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")  # pending/delivered/failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One POST of a delivery: what the receiver answered (or the error) and how long it took."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # from 1
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(sa.String(500))
    duration_ms: Mapped[float] = mapped_column(sa.Float)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reproduction(Base):
    """A job started to reproduce another; the verdict is filled in when it ends."""

    __tablename__ = "reproductions"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    of_job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    identical: Mapped[bool | None]
    first_divergent_epoch: Mapped[int | None]
    epochs_compared: Mapped[int | None]
    checkpoints_compared: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LrRangeTest(Base):
    """A job that is a learning-rate range test (core/lr_range_test.py): the range asked for
    and, once it ran, its (lr, loss) series and suggestion (``result``)."""

    __tablename__ = "lr_range_tests"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    min_lr: Mapped[float] = mapped_column(sa.Float)
    max_lr: Mapped[float] = mapped_column(sa.Float)
    steps: Mapped[int]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegisteredModel(Base):
    """A named model of a tenant: numbered, immutable versions, and aliases that move."""

    __tablename__ = "registered_models"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = _id("model")
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(sa.String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """Version ``version`` (1, 2, ...) of a model: one checkpoint, recorded with its provenance.

    The checkpoint cannot be deleted while a version holds it (ON DELETE RESTRICT): pruning
    skips it, and deleting its job or dataset is refused before the database has to.
    """

    __tablename__ = "model_versions"

    model_id: Mapped[str] = mapped_column(
        sa.ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    checkpoint_id: Mapped[str] = mapped_column(
        sa.ForeignKey("checkpoints.id", ondelete="RESTRICT"), index=True)
    checkpoint_sha256: Mapped[str] = mapped_column(sa.String(64))
    job_id: Mapped[str | None] = mapped_column(ID, index=True)
    dataset_id: Mapped[str | None] = mapped_column(ID, index=True)
    dataset_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelAlias(Base):
    """One span of an alias on a version: from ``set_at`` until ``moved_at`` (None: now).

    Moving an alias closes its open span and opens another, so the rows are its history; a
    partial unique index keeps one open span per (model, alias).
    """

    __tablename__ = "model_aliases"
    __table_args__ = (
        sa.Index("ix_model_aliases_current", "model_id", "alias", unique=True,
                 postgresql_where=sa.text("moved_at IS NULL"),
                 sqlite_where=sa.text("moved_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(
        sa.ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[int]
    set_at: Mapped[datetime]
    moved_at: Mapped[datetime | None]


class Fork(Base):
    """A job started from another job's checkpoint: with its optimizer state ("keep", a
    resume under another spec) or from its weights alone ("reset")."""

    __tablename__ = "forks"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    parent_job_id: Mapped[str] = mapped_column(ID, index=True)
    # The child reads these bytes when it starts, so pruning keeps them (no FK: the parent's
    # deletion must not be blocked by a child that has long since run).
    checkpoint_id: Mapped[str] = mapped_column(ID, index=True)
    epoch: Mapped[int]
    optimizer_state: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchPrediction(Base):
    """A dataset scored by one checkpoint, in chunks of ``chunk_rows`` rows (store/batches.py).

    The checkpoint is resolved when the batch is submitted and kept by id (RESTRICT, like a
    model version's): an alias that moves later does not change what the batch scores.
    """

    __tablename__ = "batch_predictions"
    __table_args__ = (sa.Index("ix_batch_predictions_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = _id("batch")
    tenant_id: Mapped[str] = _tenant_fk()
    checkpoint_id: Mapped[str] = mapped_column(
        sa.ForeignKey("checkpoints.id", ondelete="RESTRICT"), index=True)
    dataset_id: Mapped[str] = mapped_column(sa.String(200), index=True)
    # An imported checkpoint's declared loss (it sets predict's link), read by the API's rule
    # at submission so the worker need not know where imports keep it.
    loss: Mapped[str | None] = mapped_column(sa.String(64))
    format: Mapped[str] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    rows_total: Mapped[int] = mapped_column(sa.BigInteger)
    rows_done: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    chunk_rows: Mapped[int]
    error_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    errors: Mapped[list[Any]] = mapped_column(JSONType, default=list)  # the first few rows
    failure_reason: Mapped[str | None] = mapped_column(sa.Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    heartbeat_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BatchChunk(Base):
    """Chunk ``chunk_index`` of a batch's outputs: float64, row-major, NaN rows for errors.

    The primary key is what makes a chunk impossible to write twice, whichever worker tries.
    """

    __tablename__ = "batch_chunks"

    batch_id: Mapped[str] = mapped_column(
        sa.ForeignKey("batch_predictions.id", ondelete="CASCADE"), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    rows: Mapped[int]
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)


SWEEP_STATUSES = JOB_STATUSES
#: how a trial ended, as the sweep counts it ("pruned" is a job that succeeded, stopped early)
TRIAL_OUTCOMES = ("succeeded", "pruned", "failed", "cancelled")


class Sweep(Base):
    """A hyperparameter sweep: its body, its state, and the next trial index to hand out.

    Every decision is a conditional UPDATE or an INSERT keyed by (sweep, trial) on these rows
    (store/sweeps.py), so the controller keeps nothing in memory.
    """

    __tablename__ = "sweeps"
    __table_args__ = (
        sa.CheckConstraint(_in("status", SWEEP_STATUSES), name="status"),
        sa.UniqueConstraint("tenant_id", "idempotency_key"),
        sa.Index("ix_sweeps_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_sweeps_active", "status",
                 postgresql_where=sa.text(ACTIVE_JOBS_PREDICATE),
                 sqlite_where=sa.text(ACTIVE_JOBS_PREDICATE)),
    )

    id: Mapped[str] = _id("sweep")
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(sa.String(200))
    spec: Mapped[dict[str, Any]]  # the body as stored, every default filled
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    stop_reason: Mapped[str | None] = mapped_column(sa.String(32))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    trials_created: Mapped[int] = mapped_column(default=0)  # the next trial's index
    ends_seen: Mapped[int] = mapped_column(default=0)  # trials whose end was recorded
    event_seq: Mapped[int] = mapped_column(default=0)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    request_hash: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    deadline_at: Mapped[datetime | None]  # created_at + time_budget_s
    finished_at: Mapped[datetime | None]


class SweepTrial(Base):
    """One trial: its parameters, its current job (a retry is a new job) and how it ended."""

    __tablename__ = "sweep_trials"
    __table_args__ = (
        sa.CheckConstraint(f"outcome IS NULL OR {_in('outcome', TRIAL_OUTCOMES)}",
                           name="outcome"),
    )

    sweep_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    trial_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    params: Mapped[dict[str, Any]]
    job_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    attempts: Mapped[int] = mapped_column(default=1)
    outcome: Mapped[str | None] = mapped_column(sa.String(16))  # NULL while it runs
    end_seq: Mapped[int | None]  # the order the sweep saw trials end in (TPE's history)
    value: Mapped[float | None] = mapped_column(sa.Float(precision=53))  # best of the metric
    best_epoch: Mapped[int | None]
    epochs_run: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class SweepRung(Base):
    """ASHA's table: a trial's metric at a rung, in report order, and what was decided."""

    __tablename__ = "sweep_rungs"
    __table_args__ = (sa.UniqueConstraint("sweep_id", "trial_index", "rung"),)

    sweep_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # per sweep, from 1
    trial_index: Mapped[int]
    rung: Mapped[int]  # the epoch
    value: Mapped[float | None] = mapped_column(sa.Float(precision=53))  # NULL: NaN
    continues: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SweepEvent(Base):
    """The sweep's event log behind its Server-Sent Events; ``seq`` is the SSE id."""

    __tablename__ = "sweep_events"

    sweep_id: Mapped[str] = mapped_column(
        sa.ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(sa.String(32))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
