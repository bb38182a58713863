"""Scoring a batch prediction: the dataset's rows through one checkpoint, chunk by chunk.

The network is loaded once and the dataset's rows are read once, straight from the stored
parts into one array; each chunk is scored into one reused output buffer and committed
with its progress in one transaction (store/batches.py states
the exactly-once invariant). Between chunks the lease is renewed and the cancel flag read.
A row with NaN or infinite features is left NaN in the output and listed with its index;
the other rows of its chunk are scored as usual.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store import batches
from store import checkpoints as store_checkpoints
from store import webhooks as store_webhooks
from store.models import BatchPrediction
from worker.store_ops import dataset_arrays

log = logging.getLogger(__name__)

SUCCEEDED_EVENT = "batch_prediction.succeeded"


class BatchInputError(Exception):
    """The batch's checkpoint or dataset is gone or unreadable: retrying cannot help."""


# The dataset's rows are read into one array straight from its stored parts (no bytes object
# of the whole file on top: store/byte_parts.py), and scored a chunk at a time as views of it.
RowChunks = Generator[np.ndarray, None, None]


def array_chunks(X: np.ndarray, start: int, size: int) -> RowChunks:
    """Views of ``X``'s rows from ``start``, ``size`` at a time (X already in memory)."""
    for first in range(start, len(X), size):
        yield X[first:first + size]


def feature_chunks(s: Session, tenant_id: str, dataset_id: str, start: int,
                   size: int) -> RowChunks:
    """The dataset's X rows from ``start`` in chunks of ``size`` (a builtin by
    ``builtin:<name>``, or an upload read through store.datasets)."""
    from core.datasets import load_builtin
    from core.spec.job import BUILTIN_PREFIX

    if dataset_id.startswith(BUILTIN_PREFIX):
        X = np.asarray(load_builtin(dataset_id[len(BUILTIN_PREFIX):]).X)
        return array_chunks(X, start, size)
    arrays = dataset_arrays(s, tenant_id, dataset_id)
    if arrays is None:
        raise BatchInputError(f"dataset {dataset_id} no longer exists")
    return array_chunks(np.asarray(arrays[0]), start, size)


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
        with contextlib.closing(inputs.chunks) as chunks:
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
