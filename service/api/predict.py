"""Predict with a job's checkpoint (`best`, `latest` or an id) or any checkpoint by id.

Inputs are checked before the network sees them: a rectangular array of finite numbers whose
row shape matches the network's input, at most `max_predict_rows` rows (413 beyond that). The
stored preprocessing (input standardization) is applied by `Network.predict` itself.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from service.api import data
from service.api.checkpoints import (
    find_checkpoint,
    inference_problem,
    network_for,
    pick_checkpoint,
)
from service.api.common import not_found
from service.auth import current_tenant
from service.context import read_session, services
from service.errors import ApiError, validation_error
from service.schemas.checkpoints import CheckpointPath
from service.schemas.common import responses
from service.schemas.jobs import JobPath
from service.schemas.predict import PredictBody, PredictOut
from store.statuses import TERMINAL_STATUSES

bp = APIBlueprint(
    "predict", __name__, url_prefix="/v1",
    abp_tags=[Tag(name="predict")], abp_security=[{"bearer": []}],
)


def _leaf_types(values: list[Any]) -> set[type]:
    """The types of the non-list items of a nested list (map/set run in C: ~10 ns an item)."""
    types = set(map(type, values))
    if list in types:
        types.discard(list)
        for value in values:
            if type(value) is list:
                types |= _leaf_types(value)
    return types


def checked_inputs(inputs: list[Any], input_shape: tuple[int, ...],
                   dtype: Any = np.float64) -> np.ndarray:
    """`inputs` as a float64 array of shape (N, *input_shape), or a 413/422 problem.

    Only JSON numbers are inputs: NumPy would read "1" and true as 1.0. A value past the
    largest finite number of the model's `dtype` would become infinity inside the model
    (1e308 in float32 answered null outputs), so it is refused too.
    """
    limit = services().settings.limits.max_predict_rows
    if len(inputs) > limit:
        raise ApiError(413, f"inputs: {len(inputs)} rows; at most {limit} per request",
                       kind="too-many-rows",
                       errors=[{"field": "inputs", "message": f"at most {limit} rows"}])
    if not inputs:
        raise validation_error("inputs", "needs at least one row")
    foreign = _leaf_types(inputs) - {int, float}
    if foreign:
        names = sorted("boolean" if t is bool else "string" if t is str else "null"
                       if t is type(None) else "object" for t in foreign)
        raise validation_error("inputs", f"must hold JSON numbers only, got {', '.join(names)}")
    try:
        X = np.asarray(inputs, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise validation_error(
            "inputs", "must be a rectangular array of numbers (every row the same shape)"
        ) from None
    if not np.isfinite(X).all():
        raise validation_error("inputs", "contains NaN or infinity")
    largest = float(np.finfo(dtype).max)
    if X.size and float(np.abs(X).max()) > largest:
        raise validation_error("inputs", f"a value beyond {largest:.6g} overflows the model's "
                               f"{np.dtype(dtype).name}")
    shape = tuple(input_shape)
    accepted = {shape}
    if len(shape) == 3 and shape[0] == 1:
        accepted.add(shape[1:])  # (N, H, W) is read as (N, 1, H, W) (docs/spec.md)
    if tuple(X.shape[1:]) not in accepted:
        raise validation_error(
            "inputs", f"each row must have shape {list(shape)}, got {list(X.shape[1:])}"
        )
    return X


def _classes(network: Any, outputs: np.ndarray, labels: list[Any] | None) -> list[Any] | None:
    link = getattr(network, "loss_link", "identity")
    if link == "softmax":
        index = outputs.argmax(axis=1)
    elif link == "sigmoid" and outputs.ndim == 2 and outputs.shape[1] == 1:
        index = (outputs[:, 0] > 0.5).astype(np.int64)
    else:
        return None
    if labels and len(labels) > int(index.max(initial=0)):
        return [labels[int(i)] for i in index]
    return [int(i) for i in index]


def _finite_lists(outputs: np.ndarray) -> list[Any]:
    # Overflowing weights can still produce inf; JSON has no such number, so send null.
    values: list[Any] = outputs.tolist()
    if np.isfinite(outputs).all():
        return values
    flat = outputs.astype(object)
    flat[~np.isfinite(outputs)] = None
    return flat.tolist()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Target:
    """What a predict request resolved to: the checkpoint and the dataset's class labels."""

    checkpoint_id: str
    labels: list[Any] | None


class TargetCache:
    """(tenant, what was asked) -> Target for a few seconds.

    Predict's latency budget (a couple of milliseconds) has no room for three database reads per
    request. A checkpoint id always means the same weights; "best"/"latest" of a job are cached
    only once the job has finished, so a resumed job is seen again within `TTL_SECONDS`.
    """

    TTL_SECONDS = 5.0

    def __init__(self) -> None:
        self._items: dict[tuple[str, ...], tuple[Target, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Target | None:
        hit = self._items.get(key)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key: tuple[str, ...], target: Target) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (target, time.monotonic() + self.TTL_SECONDS)


def _targets() -> TargetCache:
    extras = services().extras
    cache: TargetCache | None = extras.get("predict_targets")
    if cache is None:  # first request of this app; a lost race only costs one empty cache
        cache = extras.setdefault("predict_targets", TargetCache())
    return cache


def labels_for_checkpoint(session: Any, checkpoint_id: str, job_id: str | None
                          ) -> list[Any] | None:
    """The class labels a checkpoint's predictions speak, cached: a checkpoint's job and
    dataset never change (a registered model resolves its version on every request, but
    need not load its dataset on every request to learn them)."""
    key = (current_tenant(), "labels", checkpoint_id)
    hit = _targets().get(key)
    if hit is not None:
        return hit.labels
    labels = None
    if job_id is not None:
        from store import jobs as store_jobs

        job = store_jobs.get(session, current_tenant(), job_id)
        labels = data.job_labels(session, current_tenant(), job) if job is not None else None
    _targets().put(key, Target(checkpoint_id, labels))
    return labels


def run_prediction(target: Target, inputs: list[Any],
                   model: dict[str, Any] | None = None) -> Response:
    network = network_for(target.checkpoint_id)
    X = checked_inputs(inputs, tuple(network.input_shape), network.dtype)
    too_big = inference_problem(network, int(X.shape[0]), services().settings.limits)
    if too_big is not None:
        raise ApiError(413, f"inputs: {too_big}", kind="predict-budget-exceeded",
                       errors=[{"field": "inputs", "message": too_big}])
    with np.errstate(all="ignore"):
        outputs = np.asarray(network.predict(X), dtype=np.float64)
    # The forward pass left its scratch in the layers: the cache's byte bound must see it.
    services().model_cache.remeasure(target.checkpoint_id, int(X.shape[0]))
    # An imported weights.npz may carry its own labels (`__classes__`).
    classes = _classes(network, outputs, target.labels or network.classes)
    # json.dumps straight into the Response: jsonify's provider (sorted keys, a `default`
    # hook for types this payload never holds) was a third of predict's JSON time.
    answer = {"checkpoint_id": target.checkpoint_id,
              "outputs": _finite_lists(outputs), "classes": classes}
    if model is not None:
        answer["model"] = model
    body = json.dumps(answer, separators=(",", ":"))
    return Response(body, mimetype="application/json")


def _job_checkpoint(session: Any, job_id: str, which: str) -> Any:
    from store import jobs as store_jobs

    job = store_jobs.get(session, current_tenant(), job_id)
    if job is None:
        raise not_found("job", job_id)
    if which in ("best", "latest"):
        row = pick_checkpoint(session, job, which)
        if row is None:
            raise ApiError(409, f"job {job_id} has no checkpoint yet", kind="no-checkpoint")
        return job, row
    row = find_checkpoint(session, which)
    if row.job_id != job_id:
        raise not_found("checkpoint", which)
    return job, row


@bp.post("/jobs/<job_id>/predict", responses=responses({200: PredictOut}, 404, 409, 413, 415))
def predict_job(path: JobPath, body: PredictBody) -> Response:
    """Predict with a job's `best` (default) or `latest` checkpoint, or one of its ids."""
    key = (current_tenant(), "job", path.job_id, body.checkpoint)
    target = _targets().get(key)
    if target is None:
        with read_session() as session:
            job, row = _job_checkpoint(session, path.job_id, body.checkpoint)
            target = Target(row.id, data.job_labels(session, current_tenant(), job))
        if job.status in TERMINAL_STATUSES:
            _targets().put(key, target)
    return run_prediction(target, body.inputs)


@bp.post("/checkpoints/<checkpoint_id>/predict",
         responses=responses({200: PredictOut}, 404, 413, 415))
def predict_checkpoint(path: CheckpointPath, body: PredictBody) -> Response:
    """Predict with one checkpoint (trained or imported); `checkpoint` is ignored here."""
    key = (current_tenant(), "checkpoint", path.checkpoint_id)
    target = _targets().get(key)
    if target is None:
        with read_session() as session:
            row = find_checkpoint(session, path.checkpoint_id)
            labels = None
            if row.job_id is not None:
                from store import jobs as store_jobs

                job = store_jobs.get(session, current_tenant(), row.job_id)
                labels = (data.job_labels(session, current_tenant(), job)
                          if job is not None else None)
            target = Target(row.id, labels)
        _targets().put(key, target)
    return run_prediction(target, body.inputs)
