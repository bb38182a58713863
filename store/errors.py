"""What can go wrong in the store, named after the problem; service/errors.py maps them to HTTP."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class NotFound(StoreError):
    """The row does not exist, or belongs to another tenant (the two are not told apart)."""


class Conflict(StoreError):
    """The request contradicts the stored state, e.g. an idempotency key reused, other body."""


class QuotaExceeded(StoreError):
    """The tenant has `cap` jobs queued or running (`active`, counted up to the cap)."""

    def __init__(self, active: int, cap: int) -> None:
        super().__init__(f"{active} jobs are queued or running; the limit is {cap} concurrent"
                         " jobs per tenant")
        self.active, self.cap = active, cap


class InvalidValue(StoreError, ValueError):
    """A request's `field` has a value the stored state does not allow (a 422 at the edge)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class BadCursor(StoreError, ValueError):
    """A page cursor that the store did not hand out (a 400 at the edge)."""
