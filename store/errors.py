"""What can go wrong in the store, named after the problem; service/errors.py maps them to HTTP."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    """The row does not exist, or belongs to another tenant (the two are not told apart)."""


class Conflict(StoreError):
    """The request contradicts the stored state, e.g. an idempotency key reused, other body."""


class QuotaExceeded(StoreError):
    """A tenant limit (concurrent jobs, stored bytes) would be passed."""


class BadCursor(StoreError, ValueError):
    """A page cursor that the store did not hand out (a 400 at the edge)."""
