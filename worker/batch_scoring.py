"""Scoring a batch prediction: the dataset's rows through one checkpoint, chunk by chunk.

The network is loaded once and the dataset's rows are read a chunk at a time into one reused
buffer (never a whole X); each chunk is scored into one reused output buffer and committed
with its progress in one transaction (store/batches.py states
the exactly-once invariant). Between chunks the lease is renewed and the cancel flag read.
A row with NaN or infinite features is left NaN in the output and listed with its index;
the other rows of its chunk are scored as usual.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import queue
import threading
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store import batches
from store import checkpoints as store_checkpoints
from store import datasets as store_datasets
from store import webhooks as store_webhooks
from store.models import BatchPrediction

log = logging.getLogger(__name__)

SUCCEEDED_EVENT = "batch_prediction.succeeded"


class BatchInputError(Exception):
    """The batch's checkpoint or dataset is gone or unreadable: retrying cannot help."""


# Rows are read from the stored dataset chunk by chunk into one reused buffer, never as a
# whole X: a 1,000,000-row upload (488 MiB of float64) was inflated whole by np.load, whose
# 256 KiB reads through zipfile re-copy the inflater's unconsumed tail (4.8 s against 1.0 s
# for the same bytes read a chunk at a time, and the worker held X on top of the blob).
RowChunks = Generator[np.ndarray, None, None]


def array_chunks(X: np.ndarray, start: int, size: int) -> RowChunks:
    """Views of ``X``'s rows from ``start``, ``size`` at a time (X already in memory)."""
    for first in range(start, len(X), size):
        yield X[first:first + size]


def npz_chunks(blob: bytes, start: int, size: int, buffers: int = 1) -> RowChunks:
    """The rows of an npz's ``X`` from ``start``, ``size`` at a time, inflated straight into
    a ring of ``buffers`` reused buffers (a chunk is valid until ``buffers`` more are read)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive, archive.open("X.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(f)
        if dtype.hasobject or len(shape) < 2:
            raise BatchInputError("the dataset's X is not a numeric array of rows")
        if fortran_order:
            # A row's values are apart in the file (a CSV upload's X comes out of NumPy in
            # Fortran order, and is stored as parsed: training reads its bits as they are):
            # read the whole X, column-major as stored, and score views of it.
            columns = np.empty(shape[::-1], dtype=dtype)
            _fill(f, columns)
            yield from array_chunks(columns.T, start, size)
            return
        ring = [np.empty((size, *shape[1:]), dtype=dtype) for _ in range(buffers)]
        row_bytes = ring[0][0].nbytes
        skipped = 0
        while skipped < start:  # resuming: inflate and drop the rows already scored
            read = _fill(f, ring[0][:min(size, start - skipped)]) // row_bytes
            if read == 0:
                return
            skipped += read
        for index in itertools.count():
            buffer = ring[index % buffers]
            rows = _fill(f, buffer) // row_bytes
            if rows == 0:
                return
            yield buffer[:rows]


def read_ahead(chunks: RowChunks, depth: int = 1) -> RowChunks:
    """``chunks``' items, read by a thread up to ``depth`` + 1 items ahead of the consumer.

    Inflating the stored rows (zlib releases the GIL) then runs while the previous chunk
    is scored (BLAS) and committed (SQLite and psycopg release it too): the batch costs
    about the larger of reading and scoring rather than their sum. ``chunks`` must not reuse
    a buffer for ``depth`` + 2 items (npz_chunks' ring: ``buffers=depth + 2``). Close the
    generator (contextlib.closing) to stop the thread when the consumer stops early.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand("chunk", chunk):
                    return
            hand("end", None)
        except BaseException as exc:  # raised again in the consumer's thread
            hand("error", exc)

    reader = threading.Thread(target=produce, name="batch-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        reader.join()


def _fill(f: Any, into: np.ndarray) -> int:
    """Read into ``into``'s bytes until full or at the end; the bytes read."""
    view = into.data.cast("B")
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def feature_chunks(s: Session, tenant_id: str, dataset_id: str, start: int,
                   size: int) -> RowChunks:
    """The dataset's X rows from ``start`` in chunks of ``size`` (a builtin by
    ``builtin:<name>``, or an upload read through store.datasets)."""
    from core.datasets import load_builtin
    from core.spec.job import BUILTIN_PREFIX

    if dataset_id.startswith(BUILTIN_PREFIX):
        X = np.asarray(load_builtin(dataset_id[len(BUILTIN_PREFIX):]).X)
        return array_chunks(X, start, size)
    blob = store_datasets.get_blob(s, tenant_id, dataset_id)
    if blob is None:
        raise BatchInputError(f"dataset {dataset_id} no longer exists")
    return read_ahead(npz_chunks(blob, start, size, buffers=3), depth=1)


@dataclass
class ScoringInputs:
    network: Any
    chunks: RowChunks


def load_inputs(sessions: sessionmaker[Session], batch: BatchPrediction) -> ScoringInputs:
    """The network and the dataset's rows from the first chunk not yet scored."""
    from core.checkpoint import load_checkpoint

    with sessions() as s:
        blob = store_checkpoints.get_blob(s, batch.checkpoint_id)
        if blob is None:
            raise BatchInputError(f"checkpoint {batch.checkpoint_id} no longer exists")
        chunks = feature_chunks(s, batch.tenant_id, batch.dataset_id, batch.rows_done,
                                batch.chunk_rows)
    return ScoringInputs(load_checkpoint(blob, loss=batch.loss), chunks)


def bad_rows(chunk: np.ndarray) -> np.ndarray:
    """Indexes (within the chunk) of rows holding NaN or infinity."""
    finite = np.isfinite(chunk.reshape(chunk.shape[0], -1)).all(axis=1)
    return np.flatnonzero(~finite)


def score_chunk(network: object, chunk: np.ndarray, out: np.ndarray, first_row: int,
                ) -> list[batches.RowError]:
    """Fill ``out`` (len(chunk), k) with the chunk's outputs; NaN rows for the bad ones."""
    bad = bad_rows(chunk)
    with np.errstate(all="ignore"):
        if bad.size == 0:
            out[:] = network.predict(chunk).reshape(out.shape)  # type: ignore[attr-defined]
            return []
        good = np.ones(chunk.shape[0], dtype=bool)
        good[bad] = False
        out[bad] = np.nan
        if good.any():
            scored = network.predict(chunk[good])  # type: ignore[attr-defined]
            out[good] = scored.reshape(scored.shape[0], -1)
    return [batches.RowError(first_row + int(i), "features contain NaN or infinity")
            for i in bad]


def _score_chunks(sessions: sessionmaker[Session], batch: BatchPrediction, worker_id: str,
                  network: Any, chunks: RowChunks) -> str:
    """Score and commit each chunk in turn: "done", "cancelled" (the flag was read; nothing
    ended yet) or "lease_lost"."""
    width = int(np.prod(network.output_shape))
    out = np.empty((batch.chunk_rows, width), dtype=np.float64)
    # Resume after the last chunk written: rows_done only ever moves with a whole chunk.
    # A chunk's commit beats the heartbeat and reads the cancel flag in the same UPDATE.
    with sessions.begin() as s:
        cancel = batches.heartbeat(s, batch.id, worker_id)
    index = batch.rows_done // batch.chunk_rows
    for chunk in chunks:
        if cancel is None:
            return "lease_lost"
        if cancel:
            return "cancelled"
        view = out[:chunk.shape[0]]
        errors = score_chunk(network, chunk, view, index * batch.chunk_rows)
        with sessions.begin() as s:
            # The outputs are written as they are: the chunk row holds their bytes.
            cancel = batches.write_chunk(s, batch, worker_id, index, view.data.cast("B"),
                                         chunk.shape[0], errors)
        index += 1
    # Every row is scored: a cancel that came during the last chunk is too late to matter.
    return "lease_lost" if cancel is None else "done"


def score(sessions: sessionmaker[Session], settings: Settings, batch_id: str,
          worker_id: str) -> str:
    """Claim and score the batch; its outcome (succeeded, cancelled, failed, lease_lost,
    not_claimed). Other exceptions leave the lease to the caller (tasks.score_batch)."""
    with sessions.begin() as s:
        if batches.fail_exhausted(s, batch_id, settings.max_attempts, settings.lease_timeout_s):
            return "failed"
        batch = batches.claim(s, batch_id, worker_id, settings.lease_timeout_s,
                              max_attempts=settings.max_attempts)
    if batch is None:
        return "not_claimed"
    try:
        inputs = load_inputs(sessions, batch)
        with contextlib.closing(inputs.chunks) as chunks:  # stops the read-ahead thread
            outcome = _score_chunks(sessions, batch, worker_id, inputs.network, chunks)
    except BatchInputError as exc:
        with sessions.begin() as s:
            batches.finish(s, batch_id, worker_id, "failed", str(exc))
        return "failed"
    if outcome == "cancelled":
        with sessions.begin() as s:
            batches.finish(s, batch_id, worker_id, "cancelled")
        return "cancelled"
    if outcome == "lease_lost":
        return "lease_lost"
    with sessions.begin() as s:
        if not batches.finish(s, batch_id, worker_id, "succeeded"):
            return "lease_lost"
        done = batches.get(s, batch.tenant_id, batch_id)
        assert done is not None
        # In the transaction of the final status: the event exists exactly when it happened.
        store_webhooks.enqueue(s, batch.tenant_id, SUCCEEDED_EVENT,
                               batches.batch_prediction_json(done))
    log.info("batch %s: %d rows scored", batch_id, batch.rows_total)
    return "succeeded"
