"""service/http_worker.py in process: what it relies on in gunicorn, and its answers.

The deadline and the cap themselves are proven against real servers in
tests/reliability/test_slow_clients.py.
"""

from __future__ import annotations

import inspect
import json

from gunicorn.workers import gasgi

from service.http_worker import DeadlineProtocol, DeadlineWorker, problem_response


def test_gunicorn_builds_each_connections_protocol_from_its_module_name() -> None:
    """DeadlineWorker swaps `gasgi.ASGIProtocol`; that only works while gunicorn's worker
    looks the name up when a connection arrives. A gunicorn that stops doing so fails here
    rather than silently serving without the deadline."""
    source = inspect.getsource(gasgi.ASGIWorker._serve)
    assert "ASGIProtocol(self)" in source
    assert issubclass(DeadlineProtocol, gasgi.ASGIProtocol)
    assert issubclass(DeadlineWorker, gasgi.ASGIWorker)
    # The hooks DeadlineProtocol overrides are gunicorn's own names.
    for name in ("connection_made", "connection_lost", "_on_headers_complete",
                 "_safe_write", "_close_transport"):
        assert callable(getattr(gasgi.ASGIProtocol, name)), name
    # ...and the state it reads: an HTTP/1 connection has a callback parser and no reader.
    init = inspect.getsource(gasgi.ASGIProtocol.__init__)
    for attribute in ("self._callback_parser", "self.reader", "self._current_request",
                      "self._request_ready", "self._closed"):
        assert f"{attribute} = " in init, attribute


def test_the_refusals_are_whole_problem_documents_that_close_the_connection() -> None:
    raw = problem_response(408, "Request Timeout", "header-timeout", "too slow", "headers")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 408 Request Timeout"
    assert "Connection: close" in lines and "Content-Type: application/problem+json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {
        "type": "urn:weightsmith:problem:header-timeout", "title": "Request Timeout",
        "status": 408, "detail": "too slow",
        "errors": [{"field": "headers", "message": "too slow"}]}
    raw = problem_response(503, "Service Unavailable", "too-many-connections", "full",
                           headers={"Retry-After": "1"})
    assert b"\r\nRetry-After: 1\r\n" in raw and b'"errors"' not in raw


def test_the_problem_type_prefix_is_the_services() -> None:
    from service import errors, http_worker

    assert http_worker.PROBLEM_TYPE_PREFIX == errors.TYPE_PREFIX
