"""Bytes stored as numbered parts of `PART_BYTES`, streamed in and out: datasets and uploads.

The layout is checkpoint_parts' (store/checkpoint_parts.py says why parts of one heap page,
PLAIN storage and binary COPY): (owner id, seq, data), every part `PART_BYTES` long but the
last. Unlike a checkpoint, which is written and read whole, these bytes never need to be
one Python object: `write` takes them as any number of buffers (the views of an array's
memory, the pieces of a request body as they arrive) and `read` hands each part to a sink
with its offset (`seq * PART_BYTES`), so a reader copies them straight into the array or
file they end in. COPY asks for no order (see checkpoint_parts), hence the offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.checkpoint_parts import PART_BYTES
from store.db import driver_connection
from store.models import DatasetPart, UploadPart

# SQLite inserts this many parts per statement (8 MB), so a body is never held whole.
SQLITE_BATCH = 1000

Sink = Callable[[int, bytes], None]


class PartTable:
    """One table of parts: `key` is the owner's id column."""

    def __init__(self, table: sa.Table, key: str) -> None:
        self.table = table
        self.key = key
        self.copy_in = f"COPY {table.name} ({key}, seq, data) FROM STDIN (FORMAT BINARY)"
        self.copy_out = (f"COPY (SELECT seq, data FROM {table.name} WHERE {key} = %s"
                         f" AND seq >= %s) TO STDOUT (FORMAT BINARY)")

    def write(self, s: Session, owner_id: str, chunks: Iterable[bytes | memoryview],
              first_seq: int = 0) -> int:
        """Store the bytes of `chunks`, in order, as parts numbered from `first_seq`; the
        number of bytes. Every part is `PART_BYTES` but the last (an empty one if there are
        no bytes and `first_seq` is 0, so that a stored value always has a part)."""
        size = 0
        conn = s.connection()
        numbered = enumerate(_parts(chunks, empty=first_seq == 0), start=first_seq)
        if conn.dialect.name != "postgresql":
            batch: list[dict[str, object]] = []
            for seq, part in numbered:
                size += len(part)
                batch.append({self.key: owner_id, "seq": seq, "data": bytes(part)})
                if len(batch) == SQLITE_BATCH:
                    s.execute(sa.insert(self.table), batch)
                    batch = []
            if batch:
                s.execute(sa.insert(self.table), batch)
            return size
        with driver_connection(conn).cursor() as cur, cur.copy(self.copy_in) as copy:
            copy.set_types(["text", "int4", "bytea"])
            for seq, part in numbered:
                size += len(part)
                copy.write_row((owner_id, seq, part))
        return size

    def read(self, s: Session, owner_id: str, sink: Sink, first_seq: int = 0) -> int:
        """Hand every part from `first_seq` on to `sink(offset, data)`, in no set order
        (offsets count from part `first_seq`); the number of parts."""
        if s.autoflush:  # as a query through the session would: see rows not yet flushed
            s.flush()
        conn = s.connection()
        count = 0
        if conn.dialect.name != "postgresql":
            query = (sa.select(self.table.c.seq, self.table.c.data)
                     .where(self.table.c[self.key] == owner_id, self.table.c.seq >= first_seq))
            for seq, data in s.execute(query):
                sink((seq - first_seq) * PART_BYTES, data)
                count += 1
            return count
        with driver_connection(conn).cursor() as cur, \
                cur.copy(self.copy_out, (owner_id, first_seq)) as copy:
            copy.set_types(["int4", "bytea"])
            for seq, data in copy.rows():
                sink((seq - first_seq) * PART_BYTES, data)
                count += 1
        return count

    def read_into(self, s: Session, owner_id: str, buffer: memoryview) -> bool:
        """Fill `buffer` (writable, exactly the stored size) with the stored bytes; False if
        there are none. A ValueError if the parts do not fill it exactly."""
        view = buffer.cast("B") if buffer.format != "B" else buffer
        filled = 0

        def place(offset: int, data: bytes) -> None:
            nonlocal filled
            end = offset + len(data)
            if end > len(view):
                raise ValueError(f"{self.table.name}: part at {offset} runs past the"
                                 f" {len(view)} stored bytes")
            view[offset:end] = data
            filled += len(data)

        if not self.read(s, owner_id, place):
            return False
        if filled != len(view):
            raise ValueError(f"{self.table.name}: {filled} bytes stored for {owner_id},"
                             f" {len(view)} expected")
        return True

    def delete(self, s: Session, owner_id: str, first_seq: int = 0) -> None:
        s.execute(sa.delete(self.table).where(self.table.c[self.key] == owner_id,
                                              self.table.c.seq >= first_seq))


def _parts(chunks: Iterable[bytes | memoryview], *, empty: bool) -> Iterator[bytes | memoryview]:
    """The bytes of `chunks` cut into `PART_BYTES` pieces: views of the chunks where a piece
    lies within one, a small copy where it straddles two."""
    pending = bytearray()
    given = False
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if pending:
            take = PART_BYTES - len(pending)
            pending += view[:take]
            view = view[take:]
            if len(pending) < PART_BYTES:
                continue
            yield bytes(pending)
            given = True
            pending.clear()
        whole = len(view) - len(view) % PART_BYTES
        for start in range(0, whole, PART_BYTES):
            yield view[start:start + PART_BYTES]
            given = True
        pending += view[whole:]
    if pending or (empty and not given):
        yield bytes(pending)


DATASET_PARTS = PartTable(cast(sa.Table, DatasetPart.__table__), "dataset_id")
UPLOAD_PARTS = PartTable(cast(sa.Table, UploadPart.__table__), "upload_id")
