"""Tenant-scoped reads filter by tenant in the query (issue 19).

They used to load the row by id and compare its tenant in Python, so another tenant's id was
measurably slower to refuse than a missing one (the row, its JSON spec included, was read and
built). Now the tenant is in the WHERE clause: for another tenant's id the database returns
no row, exactly as for a missing id, and the session never holds the object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import checkpoints, datasets, jobs
from tests.store.conftest import make_job, make_tenant
from tests.store.test_datasets import add


@contextmanager
def statements(s: Session) -> Iterator[list[str]]:
    """The SQL the session's connection runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = s.get_bind()
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def owned_rows(s: Session, tenant_id: str) -> dict[str, str]:
    return {
        "job": make_job(s, tenant_id).id,
        "dataset": add(s, tenant_id).id,
        "checkpoint": checkpoints.import_checkpoint(s, tenant_id, blob=b"weights").id,
    }


READS: dict[str, Callable[[Session, str, str], Any]] = {
    "job": jobs.get,
    "dataset": datasets.get,
    "checkpoint": lambda s, tenant, ident: checkpoints.get(s, ident, tenant_id=tenant),
}


@pytest.mark.parametrize("kind", sorted(READS))
def test_another_tenants_id_is_refused_by_the_query_like_a_missing_one(
        s: Session, kind: str) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    ids = owned_rows(s, acme.id)
    s.flush()
    s.expunge_all()  # nothing in the identity map: every read goes to the database
    read = READS[kind]
    with statements(s) as sql:
        assert read(s, globex.id, ids[kind]) is None
    assert len(sql) == 1 and "tenant_id" in sql[0].split("WHERE", 1)[1], sql
    assert not list(s.identity_map.values())  # the other tenant's row was never built
    with statements(s) as missing_sql:
        assert read(s, globex.id, ids[kind][:-4] + "ZZZZ") is None
    assert missing_sql == sql  # the same statement: a missing id and a foreign one look alike
    assert read(s, acme.id, ids[kind]) is not None
