"""A job's statuses, which of them are active, terminal or resumable, and the event that
announces a change of status: the one owner of each (the API, the worker, the CLI and the
dashboard read them from here or from the API)."""

from __future__ import annotations

from typing import Any

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")  # count against the concurrent-jobs quota
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")  # the job's run is over
RESUMABLE_STATUSES = ("cancelled", "failed")  # POST /resume takes them back to queued
# The partial index ix_jobs_tenant_active and the submission's quota count share this text.
ACTIVE_JOBS_PREDICATE = f"status IN ({', '.join(repr(s) for s in ACTIVE_STATUSES)})"

STATUS_EVENT = "status"  # the job_events type (and SSE event name) of a status change


def status_event(status: str, *, stop_reason: str | None = None,
                 failure_reason: str | None = None, **details: Any) -> tuple[str, dict[str, Any]]:
    """The ``(type, data)`` of the event that says the job is now ``status``.

    ``data`` always has ``status``, ``stop_reason`` and ``failure_reason``; ``details`` adds
    what belongs to one transition (``attempt`` of a claim, ``retry_after`` of a release).
    """
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {list(JOB_STATUSES)}")
    return STATUS_EVENT, {"status": status, "stop_reason": stop_reason,
                          "failure_reason": failure_reason, **details}
