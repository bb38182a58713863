"""store/diagnostics.py: per-epoch rows upserted and read back in order, a job's warnings,
both gone with the job (on SQLite and PostgreSQL)."""

from __future__ import annotations

import math

from sqlalchemy.orm import Session

from store import deletion, diagnostics, jobs
from store.models import JobDiagnostics
from store.resources import job_json

from .conftest import make_job, make_tenant


def rows(norm: float) -> list[dict[str, object]]:
    return [{"layer": 0, "type": "dense", "weight_norm": norm, "update_ratio": math.nan},
            {"layer": 1, "type": "activation", "dead_fraction": 0.5}]


def test_epochs_are_upserted_and_read_oldest_first(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    diagnostics.record(s, job.id, [(1, rows(1.0)), (2, rows(2.0)), (3, rows(3.0))])
    diagnostics.record(s, job.id, [(2, rows(2.5))])  # a re-run epoch overwrites
    diagnostics.record(s, job.id, [])
    series = diagnostics.series(s, job.id)
    assert [(e, layers[0]["weight_norm"]) for e, layers in series] == [
        (1, 1.0), (2, 2.5), (3, 3.0)]
    assert series[0][1][0]["update_ratio"] is None  # NaN is stored as null
    assert series[0][1][1] == {"layer": 1, "type": "activation", "dead_fraction": 0.5}
    assert [e for e, _ in diagnostics.series(s, job.id, after_epoch=1)] == [2, 3]
    # The newest before an epoch, still oldest first: what the warning rule continues from.
    assert [e for e, _ in diagnostics.series(s, job.id, before_epoch=4, limit=2,
                                             newest=True)] == [2, 3]
    assert [e for e, _ in diagnostics.series(s, job.id, before_epoch=2, limit=2,
                                             newest=True)] == [1]


def test_warnings_live_on_the_job_and_go_with_it(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    assert diagnostics.warnings(s, job.id) == [] and job_json(job)["warnings"] == []
    found = [{"layer": 0, "kind": "dead_units", "epoch": 1, "value": 0.75, "message": "m"}]
    diagnostics.set_warnings(s, job.id, found)
    diagnostics.record(s, job.id, [(1, rows(1.0))])
    s.expire_all()
    assert diagnostics.warnings(s, job.id) == found
    assert job_json(jobs.get(s, tenant.id, job.id))["warnings"] == found
    job.status = "succeeded"
    s.flush()
    deletion.delete_job(s, tenant.id, job.id)
    assert s.query(JobDiagnostics).count() == 0
