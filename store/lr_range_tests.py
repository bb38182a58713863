"""Which jobs are learning-rate range tests, the range each asked for, and its result.

The test itself is core.lr_range_test; the job runs it like any other job (queue, quota,
budgets, lease), and the worker writes the result here in the transaction that ends the job.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.models import LrRangeTest


def create(s: Session, job_id: str, min_lr: float, max_lr: float, steps: int) -> LrRangeTest:
    row = LrRangeTest(job_id=job_id, min_lr=min_lr, max_lr=max_lr, steps=steps)
    s.add(row)
    s.flush()
    return row


def get(s: Session, job_id: str) -> LrRangeTest | None:
    """The row that makes ``job_id`` a range test (None for an ordinary job)."""
    return s.get(LrRangeTest, job_id)


def record_result(s: Session, job_id: str, result: dict[str, Any]) -> None:
    """The run's series and suggestion (a retried run replaces an earlier one's)."""
    s.execute(sa.update(LrRangeTest).where(LrRangeTest.job_id == job_id)
              .values(result=result))
