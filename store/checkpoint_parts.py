"""A checkpoint's bytes, stored as ordered parts of at most `PART_BYTES` (checkpoint_parts).

Why parts, not one column: a 10-million-parameter model with Adam's moments is a 126 MB
checkpoint, and PostgreSQL stores one value of that size at about half the speed of the same
bytes as 1 MiB rows (one INSERT of the whole value 2.1-2.4 s here, 1 MiB rows by COPY or
executemany 0.9-1.2 s: benchmarks/service/README.md, session 4). The backend's CPU is the
cost, not the disk: building, TOASTing and WAL-logging one huge datum copies it several times.

Why 8000 bytes, not 1 MiB (session 5): a 1 MiB value is still TOASTed, cut into ~2 kB chunk
rows of a second table with its own index and one WAL record each. A part that fits one heap
page, with the column's storage PLAIN (revision 0004), is stored as it comes: the same 126 MB
by COPY took 0.34 s instead of 0.59 s (medians of 5, alternately). The id is PLAIN too (else
PostgreSQL TOASTs it, once per part, to shrink the row) and parts have no foreign key (its
check runs per row: store.models.CheckpointPart). bench_checkpoint_io's whole save went from
1.46 s to 0.57-0.70 s. A page holds 8112 bytes of data beside a 40-character id (measured);
8000 leaves a margin, and tests/store/test_checkpoint_bulk_io.py checks the fit.

On PostgreSQL the parts are written and read by binary COPY, through the session's own driver
connection and inside its transaction; other databases use plain INSERT and SELECT. The read
asks for no order and sorts by `seq` itself: with ORDER BY and stale statistics the planner
chose a bitmap scan and an on-disk sort of the whole 126 MB (0.55 s instead of 0.28 s).
Every checkpoint has at least one part (an empty one for empty bytes), so "no parts" means
"no checkpoint".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.db import driver_connection
from store.models import CheckpointPart

PART_BYTES = 8000
PARTS = cast(sa.Table, CheckpointPart.__table__)
COPY_PARTS = "COPY checkpoint_parts (checkpoint_id, seq, data) FROM STDIN (FORMAT BINARY)"
READ_PARTS = ("COPY (SELECT seq, data FROM checkpoint_parts WHERE checkpoint_id = %s)"
              " TO STDOUT (FORMAT BINARY)")


def split(blob: bytes) -> list[memoryview]:
    """`blob` in order as views of at most `PART_BYTES` (one empty view for empty bytes)."""
    view = memoryview(blob)
    return [view[start:start + PART_BYTES] for start in range(0, len(view), PART_BYTES)] or [view]


def write(s: Session, blobs: Iterable[tuple[str, bytes]]) -> None:
    """Store the bytes of checkpoints whose rows are already in the transaction (flushed):
    ``(checkpoint_id, blob)`` pairs."""
    rows = [(checkpoint_id, seq, part)
            for checkpoint_id, blob in blobs for seq, part in enumerate(split(blob))]
    if not rows:
        return
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        s.execute(sa.insert(PARTS), [{"checkpoint_id": checkpoint_id, "seq": seq,
                                      "data": bytes(part)} for checkpoint_id, seq, part in rows])
        return
    with driver_connection(conn).cursor() as cur, cur.copy(COPY_PARTS) as copy:
        copy.set_types(["text", "int4", "bytea"])
        for row in rows:
            copy.write_row(row)


def read(s: Session, checkpoint_id: str) -> bytes | None:
    """The checkpoint's bytes, or None if it has none (no such checkpoint)."""
    if s.autoflush:  # as a query through the session would: see rows added but not flushed
        s.flush()
    conn = s.connection()
    if conn.dialect.name != "postgresql":
        parts = [bytes(data) for data in s.scalars(
            sa.select(PARTS.c.data).where(PARTS.c.checkpoint_id == checkpoint_id)
            .order_by(PARTS.c.seq))]
    else:
        with driver_connection(conn).cursor() as cur, \
                cur.copy(READ_PARTS, (checkpoint_id,)) as copy:
            copy.set_types(["int4", "bytea"])
            numbered = sorted(copy.rows(), key=lambda row: row[0])
        parts = [data for _, data in numbered]
    return b"".join(parts) if parts else None

