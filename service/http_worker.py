"""gunicorn's asyncio worker with the two bounds it lacks: a headers deadline and a cap.

gunicorn 27's asyncio worker (`-k asgi`) parses requests on its event loop, so a slow client
holds no thread (docs/reliability.md, "Streaming and slow clients"). But it sets no deadline
on a connection's first request: its keep-alive timer only runs between two requests, and
the worker timeout only bounds a wait for body bytes. A client that opened a connection and
trickled its request line and headers a byte at a time (or sent nothing at all) held that
connection for as long as it liked. And it counts its connections (`nr_conns`) without ever
comparing them with `--worker-connections`, so nothing bounded how many such clients a
process kept.

`DeadlineWorker` (``gunicorn --worker-class=service.http_worker.DeadlineWorker``) serves
each connection with `DeadlineProtocol`, which

- answers **408** (a problem document naming `headers`, `Connection: close`) and closes the
  connection when the first request's headers are not complete `header_timeout_s` after it
  opened (`WEIGHTSMITH_HEADER_TIMEOUT_S`). A later request on a kept-alive connection is
  bounded by gunicorn's own keep-alive timer (`--keep-alive`, 2 s from the previous
  answer: that timer is not reset by bytes of a request that has not finished its headers).
  The body has its own deadline (`WEIGHTSMITH_BODY_TIMEOUT_S`, service/front.py: 408 naming
  `body`, then the connection closes because the body was not read to its end).
- answers **503** with `Retry-After` and closes a connection opened while the process already
  holds `--worker-connections` (`WEIGHTSMITH_API_CONNECTIONS`).

gunicorn builds each connection's protocol as ``ASGIProtocol(self)``, a name it reads from
its module when the connection arrives, and has no setting for the class: the worker sets
that name to `DeadlineProtocol` in its own process when it starts
(tests/service/test_http_worker.py fails if gunicorn stops building protocols that way).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.workers import gasgi

from config.settings import Settings

PROBLEM_TYPE_PREFIX = "urn:weightsmith:problem:"  # service/errors.py's, without importing Flask
RETRY_AFTER_FULL_S = 1


def problem_response(status: int, reason: str, kind: str, detail: str,
                     field: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 answer with a problem document, for a connection about to close."""
    document: dict[str, Any] = {"type": PROBLEM_TYPE_PREFIX + kind, "title": reason,
                                "status": status, "detail": detail}
    if field is not None:
        document["errors"] = [{"field": field, "message": detail}]
    body = json.dumps(document).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class DeadlineProtocol(ASGIProtocol):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's HTTP/1 protocol with a deadline on the first request's headers and a cap
    on the worker's connections (see the module docstring)."""

    def __init__(self, worker: DeadlineWorker) -> None:
        super().__init__(worker)
        self._headers_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # counts the connection in worker.nr_conns
        if self.worker.nr_conns > self.worker.worker_connections:
            self._refuse(problem_response(
                503, "Service Unavailable", "too-many-connections",
                f"this API process holds its limit of {self.worker.worker_connections} "
                "connections; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_FULL_S)}))
            return
        if self._callback_parser is not None and self.reader is None:
            # HTTP/1 only: an HTTP/2 connection (TLS with ALPN, or cleartext prior knowledge)
            # is framed and timed by gunicorn's HTTP/2 handler, never answered in HTTP/1.
            self._headers_deadline = self.worker.loop.call_later(
                self.worker.header_timeout_s, self._headers_too_slow)

    def _on_headers_complete(self) -> bool | None:
        self._cancel_headers_deadline()
        result: bool | None = super()._on_headers_complete()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_headers_deadline()
        super().connection_lost(exc)

    def _cancel_headers_deadline(self) -> None:
        if self._headers_deadline is not None:
            self._headers_deadline.cancel()
            self._headers_deadline = None

    def _headers_too_slow(self) -> None:
        self._headers_deadline = None
        if self._closed or self._current_request is not None:
            return
        timeout = self.worker.header_timeout_s
        self.log.info("closing a connection whose request headers took over %g s", timeout)
        self._refuse(problem_response(
            408, "Request Timeout", "header-timeout",
            f"the request line and headers did not arrive within {timeout:g} s", "headers"))

    def _refuse(self, answer: bytes) -> None:
        self._safe_write(answer)
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # the connection's task sees _closed and ends


class DeadlineWorker(gasgi.ASGIWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's asyncio worker serving connections with `DeadlineProtocol`."""

    header_timeout_s: float

    def init_process(self) -> None:
        self.header_timeout_s = Settings.from_env().limits.header_timeout_s
        gasgi.ASGIProtocol = DeadlineProtocol  # this worker process's protocol class
        super().init_process()
