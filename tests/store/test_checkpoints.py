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


def test_save_with_every_field_stores_them_as_given(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    row = checkpoints.save(s, job.id, tenant.id, 2, "periodic", b"abc", "f" * 64,
                           {"loss": 0.5}, {"layers": []})
    assert (row.epoch, row.sha256, row.metrics, row.model_spec, row.size_bytes) == (
        2, "f" * 64, {"loss": 0.5}, {"layers": []}, 3)


def test_prune_keeps_latest_last_k_best_k_and_final(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    ids = save_run(s, job.id, [0.9, 0.2, 0.5, 0.1, 0.6, 0.7, 0.8])
    deleted = checkpoints.prune(s, job.id, keep_last=2, keep_best=2, monitor="val_loss")
    # Kept: epochs 6, 7 (last two) and 4, 2 (the two lowest val_loss).
    assert sorted(deleted) == sorted([ids[0], ids[2], ids[4]])
    assert [c.epoch for c in checkpoints.list_for_job(s, job.id)] == [2, 4, 6, 7]


def test_prune_by_an_accuracy_maximises_and_never_drops_final(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    save_run(s, job.id, [0.9, 0.2, 0.5, 0.1, 0.6], final=True)
    checkpoints.prune(s, job.id, keep_last=0, keep_best=1, monitor="val_accuracy")
    # val_accuracy = 1 - loss: epoch 4 is best; epoch 5 is the latest and the final one.
    assert [(c.epoch, c.kind) for c in checkpoints.list_for_job(s, job.id)] == [
        (4, "periodic"), (5, "final")]
    save_run(s, job.id, [0.3])  # another epoch 1 checkpoint, e.g. after a resume bug
    checkpoints.prune(s, job.id, keep_last=1, keep_best=0, monitor="val_loss", mode="min")
    assert [c.epoch for c in checkpoints.list_for_job(s, job.id)] == [5]


def test_prune_ignores_rows_without_the_monitored_metric(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    a = checkpoints.save_checkpoint(s, job.id, 1, "periodic", b"a", {"loss": 0.1})
    b = checkpoints.save_checkpoint(s, job.id, 2, "periodic", b"b", {"loss": 0.2})
    assert checkpoints.prune(s, job.id, 1, 3, "val_loss") == [a.id]
    assert [c.id for c in checkpoints.list_for_job(s, job.id)] == [b.id]


def test_latest_best_and_pick(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    ids = save_run(s, job.id, [0.9, 0.2, 0.5])
    latest = checkpoints.latest_for_job(s, job.id)
    assert latest is not None and latest.id == ids[2]
    assert checkpoints.get_blob(s, latest.id) == b"e3"
    best = checkpoints.pick_for_job(s, job.id, "best")  # the job's monitor: val_loss
    assert best is not None and best.id == ids[1]
    by_acc = checkpoints.best_for_job(s, job.id, "val_accuracy")
    assert by_acc is not None and by_acc.id == ids[1]
    picked = checkpoints.pick_for_job(s, job.id, "latest")
    assert picked is not None and picked.id == ids[2]
    empty = make_job(s, tenant.id)
    assert checkpoints.latest_for_job(s, empty.id) is None
    assert checkpoints.pick_for_job(s, empty.id, "best") is None
    with pytest.raises(ValueError):
        checkpoints.pick_for_job(s, job.id, "worst")


def test_get_is_tenant_scoped_when_asked(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    job = make_job(s, acme.id)
    row = checkpoints.save_checkpoint(s, job.id, 1, "final", b"w")
    assert checkpoints.get_checkpoint(s, acme.id, row.id) is row
    assert checkpoints.get_checkpoint(s, globex.id, row.id) is None
    assert checkpoints.get(s, row.id, tenant_id=globex.id) is None
    assert checkpoints.get(s, row.id) is row
    assert checkpoints.get_blob(s, "ckpt_missing") is None


def test_imported_checkpoints_have_no_job(s: Session) -> None:
    tenant = make_tenant(s)
    row = checkpoints.import_checkpoint(s, tenant.id, blob=b"npz!", model_spec={"layers": []})
    assert (row.job_id, row.kind, row.epoch, row.size_bytes) == (None, "imported", 0, 4)
    assert row.sha256 == hashlib.sha256(b"npz!").hexdigest()
    assert s.query(Checkpoint).filter(Checkpoint.job_id.is_(None)).count() == 1
