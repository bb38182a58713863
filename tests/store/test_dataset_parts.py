"""Datasets in parts (issue 18): revision 0016 moves stored npz datasets into dataset_parts as
.npy frames and back; parts stream in and out in any number of pieces; deleting a dataset
or an upload deletes its parts."""

from __future__ import annotations

import hashlib
import io
import itertools
from functools import partial

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.datasets import stored
from store import datasets, uploads
from store.byte_parts import DATASET_PARTS, UPLOAD_PARTS
from store.checkpoint_parts import PART_BYTES
from store.columns import utcnow
from store.db import make_engine, make_session_factory
from store.errors import Conflict, InvalidValue
from store.migrate import alembic_config, upgrade_to_head
from store.models import DatasetPart, UploadPart

from .conftest import make_tenant

RNG = np.random.default_rng(18)
# Old datasets as the API stored them before 0016: float32, uint8 images, float64, int labels.
OLD = {
    "ds_float32": (RNG.normal(size=(700, 13)).astype(np.float32), RNG.integers(0, 3, 700)),
    "ds_uint8": (RNG.integers(0, 256, (40, 1, 8, 8)).astype(np.uint8),
                 RNG.integers(0, 10, 40).astype(np.int64)),
    "ds_float64": (RNG.normal(size=(5, 2)), RNG.normal(size=(5, 3))),
}


def npz(X: np.ndarray, y: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, X=X, y=y)
    return out.getvalue()


def load(s: Session, tenant_id: str, dataset_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    return stored.load(partial(datasets.read_into, s, tenant_id, dataset_id))


def assert_same(got: tuple[np.ndarray, np.ndarray] | None,
                want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got is not None
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_revision_0016_moves_stored_datasets_into_parts_and_back(db_url: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(db_url), "0011")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (id, name, created_at)"
                             " VALUES ('tnt_1', 'acme', CURRENT_TIMESTAMP)"))
        for ident, arrays in [*OLD.items(), ("ds_builtin", None)]:
            blob = None if arrays is None else npz(*arrays)
            conn.execute(sa.text(
                "INSERT INTO datasets (id, tenant_id, name, format, n_rows, x_shape, y_shape,"
                " kind, sha256, size_bytes, blob, builtin, created_at) VALUES (:id, 'tnt_1',"
                " :id, 'npz', 1, '[1]', '[1]', 'regression', :sha, :size, :blob, :builtin,"
                " CURRENT_TIMESTAMP)"),
                {"id": ident, "sha": "0" * 64, "size": len(blob or b""), "blob": blob,
                 "builtin": blob is None})
    engine.dispose()

    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with factory() as s:
        for ident, arrays in OLD.items():
            assert_same(load(s, "tnt_1", ident), arrays)
            row = datasets.get(s, "tnt_1", ident)
            assert row is not None and row.size_bytes == stored.framed_size(list(arrays))
            parts = s.scalar(sa.select(sa.func.count()).where(DatasetPart.dataset_id == ident))
            assert parts == -(-row.size_bytes // PART_BYTES)
        assert load(s, "tnt_1", "ds_builtin") is None
        assert load(s, "tnt_2", "ds_float32") is None  # another tenant's reads as missing
    engine.dispose()

    command.downgrade(alembic_config(db_url), "0011")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = {ident: (blob, size) for ident, blob, size in conn.execute(
            sa.text("SELECT id, blob, size_bytes FROM datasets"))}
    engine.dispose()
    assert rows["ds_builtin"] == (None, 0)
    for ident, arrays in OLD.items():
        blob, size = rows[ident]
        assert size == len(blob)
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as back:
            assert_same((back["X"], back["y"]), arrays)


@pytest.mark.parametrize("pieces", [1, 3, 977])
def test_parts_are_full_whatever_the_pieces_written(s: Session, pieces: int) -> None:
    tenant = make_tenant(s)
    X = RNG.normal(size=(300, 11)).astype(np.float32)
    y = RNG.integers(0, 4, 300)
    whole = b"".join(stored.frames([X, y]))
    cuts = sorted({0, len(whole), *RNG.integers(0, len(whole), pieces - 1).tolist()})
    row = datasets.create(s, tenant.id, name="d", format="npz", n_rows=300, x_shape=[300, 11],
                          y_shape=[300], kind="classification", classes=None, sha256="0" * 64,
                          size_bytes=len(whole),
                          data=[memoryview(whole)[a:b] for a, b in itertools.pairwise(cuts)])
    sizes = s.scalars(sa.select(sa.func.length(DatasetPart.data))
                      .where(DatasetPart.dataset_id == row.id).order_by(DatasetPart.seq)).all()
    assert all(size == PART_BYTES for size in sizes[:-1]) and 0 < sizes[-1] <= PART_BYTES
    assert_same(load(s, tenant.id, row.id), (X, y))


def test_a_size_that_disagrees_with_the_bytes_is_refused(s: Session) -> None:
    tenant = make_tenant(s)
    with pytest.raises(ValueError, match="5 bytes written"):
        datasets.create(s, tenant.id, name="d", format="npz", n_rows=1, x_shape=[1],
                        y_shape=[1], kind="regression", classes=None, sha256="0" * 64,
                        size_bytes=6, data=[b"12345"])


def test_deleting_a_dataset_or_an_upload_deletes_its_parts(s: Session) -> None:
    tenant = make_tenant(s)
    row = datasets.create(s, tenant.id, name="d", format="npz", n_rows=1, x_shape=[1],
                          y_shape=[1], kind="regression", classes=None, sha256="0" * 64,
                          size_bytes=3 * PART_BYTES, data=[bytes(3 * PART_BYTES)])
    upload = uploads.create(s, tenant.id, total_bytes=10, filename=None,
                            expires_at=utcnow().replace(year=2999))
    uploads.append(s, upload, 0, 10, io.BytesIO(b"0123456789"))
    assert datasets.delete(s, tenant.id, row.id) and uploads.delete(s, tenant.id, upload.id)
    for table in (DatasetPart, UploadPart):
        assert s.scalar(sa.select(sa.func.count()).select_from(table)) == 0


def received(s: Session, upload_id: str) -> bytes:
    out = bytearray()

    def place(offset: int, data: bytes) -> None:
        out[offset:offset + len(data)] = data

    UPLOAD_PARTS.read(s, upload_id, place)
    return bytes(out)


def test_an_upload_takes_pieces_in_order_resent_ones_and_refuses_gaps(s: Session) -> None:
    tenant = make_tenant(s)
    data = RNG.integers(0, 256, 3 * PART_BYTES + 123, dtype=np.uint8).tobytes()
    upload = uploads.create(s, tenant.id, total_bytes=len(data), filename="x.npz",
                            expires_at=utcnow().replace(year=2999))
    cut1, cut2 = 5000, 2 * PART_BYTES + 7  # neither on a part boundary
    assert uploads.append(s, upload, 0, cut1, io.BytesIO(data[:cut1])) == cut1
    with pytest.raises(Conflict, match="only 5000 bytes have arrived"):
        uploads.append(s, upload, cut1 + 1, 10, io.BytesIO(data[cut1 + 1:cut1 + 11]))
    # a resent piece that overlaps and continues: the overlap must match
    changed = bytearray(data[100:cut2])
    changed[50] ^= 1
    with pytest.raises(Conflict, match="differ"):
        uploads.append(s, upload, 100, len(changed), io.BytesIO(bytes(changed)))
    assert uploads.append(s, upload, 100, cut2 - 100, io.BytesIO(data[100:cut2])) == cut2
    assert uploads.append(s, upload, 0, 10, io.BytesIO(data[:10])) == cut2  # idempotent
    # A refused piece may have rewritten the last part: the caller rolls back (the API's
    # transaction does), here to a savepoint.
    for piece, error, match in [(data[cut2:cut2 + 9], uploads.BodyLength, "short"),
                                (data[cut2:cut2 + 11], uploads.BodyLength, "longer")]:
        with pytest.raises(error, match=match), s.begin_nested():
            uploads.append(s, upload, cut2, 10, io.BytesIO(piece))
    with pytest.raises(InvalidValue, match="run past"), s.begin_nested():
        uploads.append(s, upload, cut2, len(data), io.BytesIO(data[cut2:]))
    s.refresh(upload)
    assert upload.received_bytes == cut2 and received(s, upload.id) == data[:cut2]
    uploads.append(s, upload, cut2, len(data) - cut2, io.BytesIO(data[cut2:]))
    assert upload.received_bytes == len(data)
    got = received(s, upload.id)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    sizes = s.scalars(sa.select(sa.func.length(UploadPart.data))
                      .where(UploadPart.upload_id == upload.id).order_by(UploadPart.seq)).all()
    assert sizes == [PART_BYTES] * 3 + [123]


def test_expired_uploads_read_as_missing_and_are_deleted(s: Session) -> None:
    tenant = make_tenant(s)
    past = utcnow().replace(year=2000)
    old = uploads.create(s, tenant.id, total_bytes=10, filename=None, expires_at=past)
    assert uploads.get(s, tenant.id, old.id) is None
    assert uploads.delete_expired(s) == 1
    assert DATASET_PARTS.read(s, old.id, lambda offset, data: None) == 0
