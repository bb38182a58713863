"""Batch predictions: score a whole dataset with one checkpoint, as a job of the worker.

`POST /v1/batch-predictions` resolves the model (alias, version or newest), checkpoint or
job to one checkpoint id at submission, checks the dataset's row shape against the
network's input, stores the row and sends `score_batch`. The result is streamed chunk by
chunk: CSV (per row, the outputs then the class; empty fields for a row that could not be
scored) or NPY (float64 outputs, NaN rows for those).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from flask import Response, current_app, jsonify, stream_with_context
from flask_openapi3 import APIBlueprint, Tag

from service.api import data
from service.api.checkpoints import (
    find_checkpoint,
    imported_loss,
    network_for,
    pick_checkpoint,
)
from service.api.common import not_found
from service.api.events import EventsQuery, _start_after
from service.api.predict import _classes, labels_for_checkpoint
from service.auth import current_tenant
from service.context import read_session, services, transaction
from service.errors import ApiError, validation_error
from service.event_stream import format_event
from service.schemas.batch_predictions import (
    BatchPredictionBody,
    BatchPredictionOut,
    BatchPredictionPath,
)
from service.schemas.common import responses
from store import batches, registry
from store import checkpoints as store_checkpoints
from store import jobs as store_jobs
from store.models import BatchPrediction

bp = APIBlueprint(
    "batch_predictions", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="batch predictions")], abp_security=[{"bearer": []}],
)


def _checkpoint_id(session: Any, body: BatchPredictionBody) -> str:
    """The one checkpoint the request names (a model's alias or version is read now)."""
    tenant = current_tenant()
    if body.model is not None:
        row = registry.resolve(session.connection(), tenant, body.model.name,
                               alias=body.model.alias, version=body.model.version)
        if row is None:
            raise not_found("model version", body.model.name)
        return str(row[0])
    if body.job_id is not None:
        job = store_jobs.get(session, tenant, body.job_id)
        if job is None:
            raise not_found("job", body.job_id)
        picked = pick_checkpoint(session, job, "best")
        if picked is None:
            raise ApiError(409, f"job {job.id} has no checkpoint yet", kind="no-checkpoint")
        return str(picked.id)
    return str(find_checkpoint(session, str(body.checkpoint_id)).id)


def accepted_row_shapes(input_shape: tuple[int, ...]) -> set[tuple[int, ...]]:
    """Row shapes the network takes: its input shape, and (H, W) for a (1, H, W) input
    (Network.forward reads (N, H, W) as (N, 1, H, W))."""
    accepted = {tuple(input_shape)}
    if len(input_shape) == 3 and input_shape[0] == 1:
        accepted.add(tuple(input_shape[1:]))
    return accepted


@bp.post("/batch-predictions", responses=responses({202: BatchPredictionOut}, 404, 409, 422))
def create_batch_prediction(body: BatchPredictionBody) -> tuple[Response, int, dict[str, str]]:
    """Score every row of a dataset with a model version, a checkpoint or a job's best."""
    tenant = current_tenant()
    with read_session() as session:
        checkpoint_id = _checkpoint_id(session, body)
        checkpoint = store_checkpoints.get(session, checkpoint_id)
        loss = None if checkpoint is None else imported_loss(checkpoint)
        dataset = data.resolve(session, tenant, body.dataset_id, field="dataset_id")
    network = network_for(checkpoint_id)
    row_shape = tuple(int(n) for n in np.shape(dataset.X)[1:])
    expected = tuple(int(n) for n in network.input_shape)
    if row_shape not in accepted_row_shapes(expected):
        raise validation_error("dataset_id", f"rows have shape {list(row_shape)}; the "
                               f"network takes {list(expected)}")
    with transaction() as session:
        row = batches.create(session, tenant, checkpoint_id=checkpoint_id,
                             dataset_id=body.dataset_id, result_format=body.format,
                             rows_total=len(dataset.X), loss=loss,
                             chunk_rows=int(current_app.config.get(
                                 "BATCH_CHUNK_ROWS", batches.DEFAULT_CHUNK_ROWS)))
        out = batches.batch_prediction_json(row)
    services().dispatcher.score_batch(out["id"])  # lost: reconcile re-sends it
    return jsonify(out), 202, {"Location": f"/v1/batch-predictions/{out['id']}"}


def _batch(session: Any, batch_id: str) -> BatchPrediction:
    row = batches.get(session, current_tenant(), batch_id)
    if row is None:
        raise not_found("batch prediction", batch_id)
    return row


@bp.get("/batch-predictions/<batch_id>", responses=responses({200: BatchPredictionOut}, 404))
def get_batch_prediction(path: BatchPredictionPath) -> Response:
    """Status, rows done, and the rows that could not be scored."""
    with read_session() as session:
        return jsonify(batches.batch_prediction_json(_batch(session, path.batch_id)))


@bp.post("/batch-predictions/<batch_id>/cancel",
         responses=responses({202: BatchPredictionOut}, 404))
def cancel_batch_prediction(path: BatchPredictionPath) -> tuple[Response, int]:
    """Cancel: a queued batch at once, a running one at its worker's next chunk."""
    with transaction() as session:
        row = batches.request_cancel(session, current_tenant(), path.batch_id)
        if row is None:
            raise not_found("batch prediction", path.batch_id)
        return jsonify(batches.batch_prediction_json(row)), 202


def _csv_lines(outputs: np.ndarray, classes: list[Any] | None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for i, row in enumerate(outputs):
        if np.isnan(row).all():  # a row that could not be scored
            writer.writerow([""] * (len(row) + (classes is not None)))
            continue
        cells: list[Any] = [repr(float(v)) for v in row]
        if classes is not None:
            cells.append(classes[i])
        writer.writerow(cells)
    return buffer.getvalue()


def _result_stream(batch_id: str, result_format: str, width: int, rows_total: int,
                   network: Any, labels: list[Any] | None) -> Iterator[bytes]:
    if result_format == "npy":
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {
            "descr": np.dtype(np.float64).str, "fortran_order": False,
            "shape": (rows_total, width)})
        yield header.getvalue()
    with services().session_factory() as session:
        for rows, blob in batches.chunks(session, batch_id):
            if result_format == "npy":
                yield blob
                continue
            outputs = np.frombuffer(blob, dtype=np.float64).reshape(rows, width)
            # Unscored rows are NaN; their class is never written (see _csv_lines).
            classes = _classes(network, np.nan_to_num(outputs), labels)
            yield _csv_lines(outputs, classes).encode()


@bp.get("/batch-predictions/<batch_id>/result", responses=responses({200: None}, 404, 409))
def batch_prediction_result(path: BatchPredictionPath) -> Response:
    """The outputs, one line (CSV) or row (NPY) per input row, in input order."""
    with read_session() as session:
        row = _batch(session, path.batch_id)
        if row.status != "succeeded":
            raise ApiError(409, f"batch prediction {row.id} is {row.status}; its result "
                           "exists once it succeeded", kind="not-ready")
        checkpoint = store_checkpoints.get(session, row.checkpoint_id)
        job_id = None if checkpoint is None else checkpoint.job_id
        labels = labels_for_checkpoint(session, row.checkpoint_id, job_id)
        result_format, rows_total = row.format, int(row.rows_total)
    network = network_for(row.checkpoint_id)
    width = int(np.prod(network.output_shape))
    mimetype = "application/octet-stream" if result_format == "npy" else "text/csv"
    return Response(
        stream_with_context(_result_stream(row.id, result_format, width, rows_total, network,
                                           labels)),
        mimetype=mimetype,
        headers={"Content-Disposition":
                 f'attachment; filename="{row.id}.{result_format}"'})


def _progress_events(batch_id: str, after: int) -> Iterator[str]:
    """`progress` events (id: rows done) as chunks land, then one `status` event
    (id: rows_total + 1) once the batch is terminal; Last-Event-ID resumes after either."""
    cfg = current_app.config
    max_seconds, poll = float(cfg["SSE_MAX_SECONDS"]), float(cfg["SSE_POLL_SECONDS"])
    heartbeat = float(cfg["SSE_HEARTBEAT_SECONDS"])
    started = last_sent = time.monotonic()
    yield f"retry: {int(poll * 1000) + 1000}\n\n"
    while True:
        with services().session_factory() as session:
            row = batches.get(session, current_tenant(), batch_id)
            body = None if row is None else batches.batch_prediction_json(row)
        if body is None:
            return
        progress = {"rows_done": body["rows_done"], "rows_total": body["rows_total"],
                    "error_count": body["error_count"]}
        if body["rows_done"] > after:
            after = body["rows_done"]
            yield format_event(after, "progress", progress)
            last_sent = time.monotonic()
        if body["status"] in batches.TERMINAL:
            final = body["rows_total"] + 1
            if after < final:
                yield format_event(final, "status", body)
            return
        now = time.monotonic()
        if now - started >= max_seconds:
            return
        if now - last_sent >= heartbeat:
            yield ": heartbeat\n\n"
            last_sent = now
        time.sleep(poll)


@bp.get("/batch-predictions/<batch_id>/events",
        responses=responses({200: {"description": "text/event-stream of progress and status",
                                   "content": {"text/event-stream": {}}}}, 404))
def batch_prediction_events(path: BatchPredictionPath, query: EventsQuery) -> Response:
    """Live progress: `event: progress|status`; honours Last-Event-ID."""
    after = _start_after(query)
    with read_session() as session:
        _batch(session, path.batch_id)
    return Response(stream_with_context(_progress_events(path.batch_id, after)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
