"""Cursor pages, newest first: the cursor is an opaque token of the last row's (created_at, id)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.errors import BadCursor

T = TypeVar("T")
MAX_LIMIT = 1000


class Page(NamedTuple):
    """One page of rows; unpacks as ``rows, next_cursor = ...``."""

    items: list[Any]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        when = datetime.fromisoformat(stamp)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"invalid cursor {cursor!r}") from exc
    if when.tzinfo is None or not isinstance(row_id, str):
        raise BadCursor(f"invalid cursor {cursor!r}")
    return when, row_id


def newest_first(
    s: Session,
    query: sa.Select[Any],
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
    limit: int,
    cursor: str | None,
) -> Page:
    """Run `query` newest first from after `cursor`; `limit` rows and the next page's cursor.

    Keyset pagination on (created_at, id): rows inserted meanwhile never shift a page.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    if cursor:
        when, last_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(created_at < when, sa.and_(created_at == when, row_id < last_id))
        )
    rows = list(s.scalars(query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return Page(rows, None)
    last = rows[-1]
    return Page(rows, encode_cursor(getattr(last, created_at.key), getattr(last, row_id.key)))
