"""Webhook delivery settings (read with the rest by ``Settings.from_env``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookSettings:
    """How deliveries are retried, and which targets they may reach.

    A failed attempt (a 5xx, 408 or 429 answer, a timeout, a refused connection) is retried
    after ``retry_base_s * 2**(attempt - 1)`` seconds, up to ``max_attempts`` attempts: with
    the defaults 15 s, 30 s, ... 32 min, so a receiver is tried for about an hour (64 min).
    ``allow_private`` None means: allowed in embedded mode (the receiver is usually on the
    same machine), refused in production (a webhook must not reach the service's network).
    """

    allow_private: bool | None = None
    retry_base_s: float = 15.0
    max_attempts: int = 9
    timeout_s: float = 10.0
