from __future__ import annotations

import hashlib

import pytest
from sqlalchemy.orm import Session

from store import checkpoints
from store.errors import NotFound
from store.models import Checkpoint

from .conftest import make_job, make_tenant


def save_run(s: Session, job_id: str, losses: list[float], final: bool = False) -> list[str]:
    """One periodic checkpoint per epoch (1-based) with these val_loss values."""
    ids = []
    for epoch, loss in enumerate(losses, start=1):
        kind = "final" if final and epoch == len(losses) else "periodic"
        row = checkpoints.save_checkpoint(
            s, job_id, epoch, kind, f"e{epoch}".encode(), {"val_loss": loss,
                                                            "val_accuracy": 1 - loss})
        ids.append(row.id)
    return ids


def test_save_fills_tenant_hash_size_and_model_spec_from_the_job(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    row = checkpoints.save_checkpoint(s, job.id, 3, "best", b"\x00weights", {"val_loss": 0.5})
    assert row.id.startswith("ckpt_")
    assert (row.tenant_id, row.epoch, row.kind, row.size_bytes) == (tenant.id, 3, "best", 8)
    assert row.sha256 == hashlib.sha256(b"\x00weights").hexdigest()
    assert row.model_spec == {"layers": [{"type": "dense", "units": 10}]}
    assert row.metrics == {"val_loss": 0.5}
    with pytest.raises(ValueError, match="kind"):
        checkpoints.save_checkpoint(s, job.id, 3, "sometimes", b"")
    with pytest.raises(NotFound):
        checkpoints.save_checkpoint(s, "job_missing", 1, "periodic", b"")


def test_policy_rows_list_a_jobs_checkpoints_oldest_first_and_delete_many_drops_them(
    s: Session,
) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    ids = save_run(s, job.id, [0.9, 0.2, 0.5], final=True)
    rows = checkpoints.policy_rows(s, job.id)
    assert [(r.id, r.epoch, r.kind) for r in rows] == [
        (ids[0], 1, "periodic"), (ids[1], 2, "periodic"), (ids[2], 3, "final")]
    assert rows[1].metrics == {"val_loss": 0.2, "val_accuracy": 0.8}
    checkpoints.delete_many(s, [ids[0], ids[2]])
    assert [c.id for c in checkpoints.list_for_job(s, job.id)] == [ids[1]]
    assert checkpoints.get_blob(s, ids[0]) is None  # its parts went with it


def test_latest_is_the_highest_epoch(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    ids = save_run(s, job.id, [0.9, 0.2, 0.5])
    latest = checkpoints.latest_for_job(s, job.id)
    assert latest is not None and latest.id == ids[2]
    assert checkpoints.get_blob(s, latest.id) == b"e3"
    empty = make_job(s, tenant.id)
    assert checkpoints.latest_for_job(s, empty.id) is None


def test_get_is_tenant_scoped_when_asked(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    job = make_job(s, acme.id)
    row = checkpoints.save_checkpoint(s, job.id, 1, "final", b"w")
    assert checkpoints.get(s, row.id, tenant_id=acme.id) is row
    assert checkpoints.get(s, row.id, tenant_id=globex.id) is None
    assert checkpoints.get(s, row.id) is row
    assert checkpoints.get_blob(s, "ckpt_missing") is None


def test_imported_checkpoints_have_no_job(s: Session) -> None:
    tenant = make_tenant(s)
    row = checkpoints.import_checkpoint(s, tenant.id, blob=b"npz!", model_spec={"layers": []})
    assert (row.job_id, row.kind, row.epoch, row.size_bytes) == (None, "imported", 0, 4)
    assert row.sha256 == hashlib.sha256(b"npz!").hexdigest()
    assert s.query(Checkpoint).filter(Checkpoint.job_id.is_(None)).count() == 1
