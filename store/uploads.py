"""Files that arrive in pieces (`/v1/uploads`), tenant-scoped, until they become datasets.

An upload declares its size when it is made; each piece says where it goes (the API reads
`Content-Range`) and may only continue what has arrived: a piece past the end of what was
received would leave a gap and is refused, and a piece that repeats received bytes must
repeat them exactly (a client that lost the answer to a piece sends it again: idempotent).
The bytes are kept as dataset bytes are (store.byte_parts), so a file never has to fit in
memory, and a piece cut off half-way leaves nothing of itself: it is written in the
caller's transaction, which a broken body rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.byte_parts import UPLOAD_PARTS, Sink
from store.checkpoint_parts import PART_BYTES
from store.columns import utcnow
from store.errors import Conflict, InvalidValue
from store.models import Upload, UploadPart

# A piece's body is read and compared in reads of this size.
READ_BYTES = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def create(s: Session, tenant_id: str, *, total_bytes: int, filename: str | None,
           expires_at: datetime) -> Upload:
    row = Upload(tenant_id=tenant_id, total_bytes=total_bytes, received_bytes=0,
                 filename=filename, expires_at=expires_at)
    s.add(row)
    s.flush()
    return row


def get(s: Session, tenant_id: str, upload_id: str, *, for_update: bool = False,
        now: datetime | None = None) -> Upload | None:
    """The tenant's upload, or None (missing, another tenant's, or expired)."""
    query = sa.select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id,
                                    Upload.expires_at > (now or utcnow()))
    if for_update:  # two pieces of one upload at once: the second waits for the first
        query = query.with_for_update()
    return s.scalars(query).one_or_none()


def delete(s: Session, tenant_id: str, upload_id: str) -> bool:
    result = s.execute(sa.delete(Upload).where(Upload.id == upload_id,
                                               Upload.tenant_id == tenant_id)
                       .execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delete_expired(s: Session, now: datetime | None = None) -> int:
    """Delete every expired upload (their parts go by trigger); how many."""
    result = s.execute(sa.delete(Upload).where(Upload.expires_at <= (now or utcnow()))
                       .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


class BodyLength(ValueError):
    """The piece's body is shorter or longer than its range says."""


def append(s: Session, upload: Upload, start: int, length: int, body: Readable) -> int:
    """Take the piece of `length` bytes at `start` from `body`; the bytes received after it.

    Conflict for a gap (`start` past the bytes received) or for bytes that differ from those
    already received; BodyLength if the body does not hold exactly `length` bytes;
    InvalidValue for a piece past the declared size. Nothing is kept on any of them if the
    caller rolls back, as the API's transaction does.
    """
    received = int(upload.received_bytes)
    if start > received:
        raise Conflict(f"the piece starts at byte {start}, but only {received} bytes have"
                       f" arrived: send bytes {received}- first")
    if start + length > upload.total_bytes:
        raise InvalidValue("Content-Range", f"bytes {start}-{start + length - 1} run past the"
                           f" upload's {upload.total_bytes} bytes")
    overlap = min(received, start + length) - start
    for offset, stored in _stored(s, upload.id, start, start + overlap):
        sent = _read_exactly(body, len(stored))
        if sent != stored:
            raise Conflict(f"the piece's bytes from {offset} differ from those received"
                           " before; a resent piece must repeat them")
    fresh = length - overlap
    if fresh:
        first_seq, partial = divmod(received, PART_BYTES)
        head = b""
        if partial:  # the last part is rewritten whole, so that parts stay PART_BYTES
            head = _part(s, upload.id, first_seq)
            UPLOAD_PARTS.delete(s, upload.id, first_seq)
        written = UPLOAD_PARTS.write(s, upload.id, _body(body, fresh, head), first_seq)
        assert written == partial + fresh
        received += fresh
        upload.received_bytes = received
    if body.read(1):
        raise BodyLength(f"the body is longer than the {length} bytes of its range")
    s.flush()
    return received


def read(s: Session, upload_id: str, sink: Sink) -> int:
    """Hand the upload's parts to `sink(offset, data)` (store.byte_parts.PartTable.read)."""
    return UPLOAD_PARTS.read(s, upload_id, sink)


def _part(s: Session, upload_id: str, seq: int) -> bytes:
    data = s.scalar(sa.select(UploadPart.data).where(UploadPart.upload_id == upload_id,
                                                     UploadPart.seq == seq))
    return b"" if data is None else bytes(data)


def _stored(s: Session, upload_id: str, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of the stored bytes [start, stop), in order, a few parts at a time."""
    step = READ_BYTES // PART_BYTES
    seq = start // PART_BYTES
    while start < stop:
        rows = s.execute(sa.select(UploadPart.seq, UploadPart.data).where(
            UploadPart.upload_id == upload_id, UploadPart.seq >= seq, UploadPart.seq < seq + step,
        ).order_by(UploadPart.seq)).all()
        if not rows:
            raise ValueError(f"upload {upload_id}: no part stored at byte {start}")
        for part_seq, data in rows:
            lo = max(start, part_seq * PART_BYTES)
            hi = min(stop, part_seq * PART_BYTES + len(data))
            if lo < hi:
                yield lo, bytes(data[lo - part_seq * PART_BYTES:hi - part_seq * PART_BYTES])
                start = hi
        seq += step


def _read_exactly(body: Readable, size: int) -> bytes:
    data = body.read(size)
    while len(data) < size:
        more = body.read(size - len(data))
        if not more:
            raise BodyLength(f"the body ended {size - len(data)} bytes short of its range")
        data += more
    return data


def _body(body: Readable, size: int, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while size:
        chunk = body.read(min(size, READ_BYTES))
        if not chunk:
            raise BodyLength(f"the body ended {size} bytes short of its range")
        size -= len(chunk)
        yield chunk
