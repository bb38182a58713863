"""The JSON a stored row is shown as: one rendering for the API and for webhook events.

A webhook's `data` is "the object as the API shows it", and the worker that ends a job writes
that event; so the rendering lives here, below both, rather than in a view.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def isoformat(value: datetime | None) -> str | None:
    """An aware UTC datetime as RFC 3339 with a ``Z``."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def job_json(job: Any, links: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job resource, from an ORM Job or from a job's row as a mapping (a submission
    builds no ORM object: instrumenting one cost more than the rest of this function).

    ``links`` are the job's ``parent`` and ``reproduction`` (store.lineage), which live in
    tables of their own: a caller whose job may have them looks them up."""
    field = job.__getitem__ if isinstance(job, Mapping) else job.__getattribute__
    return {
        "id": field("id"),
        "name": field("name"),
        "status": field("status"),
        "spec": field("spec"),
        "dataset_id": field("dataset_id"),
        "progress": {"epoch": int(field("epoch_done") or 0),
                     "epochs": int(field("epochs_total") or 0)},
        "latest": dict(field("latest") or {}),
        "best": dict(field("best") or {}),
        "stop_reason": field("stop_reason"),
        "failure_reason": field("failure_reason"),
        "attempts": int(field("attempts") or 0),
        "cancel_requested": bool(field("cancel_requested")),
        "sweep_id": field("sweep_id"),
        "created_at": isoformat(field("created_at")),
        "started_at": isoformat(field("started_at")),
        "finished_at": isoformat(field("finished_at")),
        "parent": (links or {}).get("parent"),
        "reproduction": (links or {}).get("reproduction"),
        # core.diagnostics' warnings (a new job's row may not carry the column yet)
        "warnings": list((job.get("warnings") if isinstance(job, Mapping)
                          else job.warnings) or []),
    }
