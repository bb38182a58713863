"""Resolve a job's `dataset` reference ("builtin:<name>", an uploaded id or name) to arrays.

Datasets never change once stored, so parsed arrays are kept in a small LRU keyed by id: job
submission checks labels against the spec without re-reading its parts every time.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.errors import ApiError, validation_error
from service.model_cache import ModelCache

BUILTIN_PREFIX = "builtin:"
# Bounded by bytes too: with uploads of up to 2 GiB (issue 18) sixteen datasets could fill
# the API's memory. A dataset larger than this is read for its check and not kept.
UPLOADED_CACHE_BYTES = 256 * 1024 * 1024
_uploaded = ModelCache(capacity=16, max_bytes=UPLOADED_CACHE_BYTES,
                       size_of=lambda data: int(data.X.nbytes + data.y.nbytes))


@lru_cache(maxsize=8)
def builtin(name: str) -> Any:
    from core.datasets import load_builtin

    return load_builtin(name)


def builtin_names() -> list[str]:
    from core.datasets import BUILTINS

    return sorted(BUILTINS)


def stored_arrays(session: Session, tenant_id: str, dataset_id: str
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """An uploaded dataset's (X, y) as stored, read straight into their memory; None if it
    stores none (core.datasets.stored.load, store.datasets.read_into)."""
    from core.datasets import stored
    from store import datasets as store_datasets

    return stored.load(partial(store_datasets.read_into, session, tenant_id, dataset_id))


def stored_copy(session: Session, tenant_id: str, sha256: str, fmt: str, dataset: Any) -> Any:
    """The tenant's dataset that an upload repeats, or None: the same bytes (by sha256) read
    the same way. The arrays are compared too, because the same CSV bytes with another
    `target` column are another dataset."""
    from store import datasets as store_datasets

    for row in store_datasets.with_sha256(session, tenant_id, sha256):
        if row.format != fmt or row.classes != dataset.classes:
            continue
        arrays = stored_arrays(session, tenant_id, row.id)
        if arrays is None:
            continue
        X, y = arrays
        # NaN equals NaN here: a features-only dataset keeps its NaN rows (they are scored
        # as per-row errors), and the same upload twice is still one dataset.
        if all(a.dtype == b.dtype and a.shape == b.shape
               and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
               for a, b in ((X, dataset.X), (y, dataset.y))):
            return row
    return None


def uploaded_row(session: Session, tenant_id: str, ref: str) -> Any:
    """The tenant's uploaded dataset `ref` names, or None: an id first, else a name.

    Names need not be unique; the newest dataset with the name wins, so a name works like a
    tag: uploading corrected data under it points it at the new upload, while every job
    already submitted keeps the id it resolved to (its `dataset_id`). Refusing a shared name
    as ambiguous instead would make it unusable until the older upload is deleted, which is
    refused while a job uses it. An id wins over a name that happens to spell it.
    """
    from store import datasets as store_datasets

    row = store_datasets.get(session, tenant_id, ref)
    return row if row is not None else store_datasets.newest_named(session, tenant_id, ref)


def resolve(session: Session, tenant_id: str, ref: object, field: str = "dataset") -> Any:
    """A core Dataset for `ref`, or a 422 naming `field` (another tenant's id is 'not found')."""
    return lookup(session, tenant_id, ref, field)[1]


def lookup(session: Session, tenant_id: str, ref: object,
           field: str = "dataset") -> tuple[str | None, Any]:
    """(the uploaded dataset's id, or None for a builtin; its core Dataset) for `ref`:
    "builtin:<name>", an uploaded dataset's id, or its name. A 422 naming `field` if none."""
    from core.datasets import Dataset

    if not isinstance(ref, str) or not ref:
        raise validation_error(field, "must be 'builtin:<name>', or an uploaded dataset's id "
                               "or name")
    if ref.startswith(BUILTIN_PREFIX):
        name = ref[len(BUILTIN_PREFIX):]
        if name not in builtin_names():
            raise validation_error(
                field, f"unknown builtin dataset {name!r}; expected one of "
                f"{[BUILTIN_PREFIX + n for n in builtin_names()]}"
            )
        return None, builtin(name)

    row = uploaded_row(session, tenant_id, ref)
    if row is None:
        raise validation_error(field, f"no dataset with id or name {ref!r}")
    ident = row.id

    def load() -> Any:
        arrays = stored_arrays(session, tenant_id, ident)
        if arrays is None:
            raise validation_error(field, f"dataset {ident!r} has no stored data")
        X, y = arrays
        return Dataset(X=X, y=y, kind=row.kind, classes=row.classes, feature_names=None)

    return ident, _uploaded.get_or_load(ident, load)


def dataset_sha256(session: Session, job: Any) -> str | None:
    """The digest of the data a job trained on: the uploaded file's sha256, or for a builtin
    that of its arrays (core.reproducibility.arrays_sha256); None once it was deleted."""
    from core.reproducibility import arrays_sha256
    from store import datasets as store_datasets

    if job.dataset_id is not None:
        row = store_datasets.get(session, job.tenant_id, job.dataset_id)
        return None if row is None else str(row.sha256)
    reference = str(job.spec.get("dataset"))
    if reference.startswith(BUILTIN_PREFIX):
        data = builtin(reference.removeprefix(BUILTIN_PREFIX))
        return arrays_sha256({"X": data.X, "y": data.y})
    return None


def job_labels(session: Session, tenant_id: str, job: Any) -> list[Any] | None:
    """The class labels of a classification job's dataset (the label of each output unit),
    so predictions and `weights.npz` speak the user's labels; None for a regression job or
    a dataset deleted since (then predictions are class indices)."""
    from core.spec.training import CLASSIFICATION_LOSSES

    spec = job.spec if isinstance(job.spec, dict) else {}
    if (spec.get("loss") or {}).get("type") not in CLASSIFICATION_LOSSES:
        return None
    # The id the job resolved its dataset to: a name may point at a newer upload since.
    ref = job.dataset_id or spec.get("dataset")
    if not isinstance(ref, str):
        return None
    try:
        dataset = resolve(session, tenant_id, ref)
    except ApiError:
        return None
    classes = getattr(dataset, "classes", None)
    return list(classes) if classes is not None else None
