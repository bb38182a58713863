"""Slow clients are cut off (issue 19): a deadline on headers and on bodies, a cap on connections.

gunicorn's asyncio worker set no deadline on a connection's first request headers: a client
trickling them a byte at a time (or sending nothing) held its connection as long as it
liked, and nothing bounded how many it held (`--worker-connections` is never compared there).
service/http_worker.py answers 408 naming `headers` and closes the connection after
`WEIGHTSMITH_HEADER_TIMEOUT_S`, and 503 past `WEIGHTSMITH_API_CONNECTIONS`; a body still
arriving after `WEIGHTSMITH_BODY_TIMEOUT_S` is a 408 naming `body` and the connection closes.
Both modes, real processes, real sockets on loopback.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.processes import ServedApi

HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 2
CONNECTIONS = 40  # per API process
PROCESSES = {"serve": 1, "api": 2}  # `weightsmith api`'s default --workers
# The deadline fires on a loaded 2-core machine: allow this much past it.
SLACK_S = 6.0


@pytest.fixture(scope="module", params=["serve", "api"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    served = ServedApi(request.param, Path(tmp_path_factory.mktemp(request.param)),
                       WEIGHTSMITH_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
                       WEIGHTSMITH_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
                       WEIGHTSMITH_API_CONNECTIONS=str(CONNECTIONS))
    served.start()
    try:
        yield served
    finally:
        served.stop()
        print(served.log())  # shown when a test fails


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def trickle_until_closed(sock: socket.socket, byte: bytes, every_s: float,
                         limit_s: float) -> tuple[bytes, float]:
    """Send `byte` every `every_s` until the server closes the connection: (what it
    answered, seconds it took); fails if it is still open after `limit_s`."""
    started = time.monotonic()
    answer = b""
    sock.settimeout(every_s)
    while time.monotonic() - started < limit_s:
        with contextlib.suppress(OSError):
            if byte:
                sock.sendall(byte)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset after the answer
            return answer, time.monotonic() - started
        if not data:
            return answer, time.monotonic() - started
        answer += data
    raise AssertionError(f"the connection is still open after {limit_s} s: {answer[:300]!r}")


def problem_of(answer: bytes) -> tuple[int, bytes, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/problem+json" in head.lower(), head
    return status, head.lower(), json.loads(body)


def still_serving(server: ServedApi) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.slow
def test_headers_trickled_past_the_deadline_are_408_and_the_connection_closes(
        server: ServedApi) -> None:
    sock = connect(server.port)
    with sock:
        sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer, seconds = trickle_until_closed(sock, b"a", 0.25, HEADER_TIMEOUT_S + SLACK_S)
    status, head, problem = problem_of(answer)
    assert status == 408 and b"connection: close" in head
    assert problem["errors"] == [{"field": "headers", "message": problem["detail"]}]
    assert HEADER_TIMEOUT_S - 0.5 <= seconds <= HEADER_TIMEOUT_S + SLACK_S
    still_serving(server)


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_408_after_the_deadline(server: ServedApi) -> None:
    with connect(server.port) as sock:
        answer, seconds = trickle_until_closed(sock, b"", 0.5, HEADER_TIMEOUT_S + SLACK_S)
    status, _, problem = problem_of(answer)
    assert status == 408 and problem["errors"][0]["field"] == "headers"  # type: ignore[index]
    assert seconds >= HEADER_TIMEOUT_S - 0.5


@pytest.mark.slow
def test_an_endless_chunked_body_is_408_and_the_connection_closes(server: ServedApi) -> None:
    """Headers in time, then a 1-byte chunk every 0.25 s forever: cut at the body deadline."""
    with connect(server.port) as sock:
        sock.sendall(f"POST /v1/datasets?name=endless HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {server.key}\r\nContent-Type: text/csv\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n6\r\na,b,y\n\r\n".encode())
        answer, seconds = trickle_until_closed(sock, b"1\r\n1\r\n", 0.25,
                                               BODY_TIMEOUT_S + SLACK_S)
    status, head, problem = problem_of(answer)
    assert status == 408 and b"connection: close" in head
    assert problem["errors"] == [{"field": "body", "message": problem["detail"]}]
    assert seconds >= BODY_TIMEOUT_S - 0.5
    listed = httpx.get(f"{server.url}/v1/datasets",
                       headers={"Authorization": f"Bearer {server.key}"}, timeout=10)
    assert listed.json()["items"] == []  # nothing stored
    still_serving(server)


@pytest.mark.slow
def test_a_kept_alive_connection_trickling_its_next_request_is_closed(
        server: ServedApi) -> None:
    """After one answer, gunicorn's keep-alive timer (2 s) bounds the next request's headers,
    however many bytes of them trickle in."""
    with connect(server.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer, seconds = trickle_until_closed(sock, b"a", 0.25, 2 + SLACK_S)
    assert b"HTTP/1.1 200" not in answer  # closed, never answered
    assert seconds >= 1.5  # by the keep-alive timer, not at once


@pytest.mark.slow
def test_connections_past_the_cap_are_503_and_the_rest_are_cut_at_the_deadline(
        server: ServedApi) -> None:
    processes = PROCESSES[server.mode]
    count = processes * CONNECTIONS + 1  # at least one process is over its cap
    socks = [connect(server.port) for _ in range(count)]
    statuses: list[int] = []
    try:
        for sock in socks:
            answer, _ = trickle_until_closed(sock, b"", 0.5, HEADER_TIMEOUT_S + 2 * SLACK_S)
            statuses.append(problem_of(answer)[0])
    finally:
        for sock in socks:
            sock.close()
    refused, timed_out = statuses.count(503), statuses.count(408)
    assert refused + timed_out == count, statuses
    assert refused >= 1 and timed_out <= processes * CONNECTIONS
    if processes == 1:
        assert (refused, timed_out) == (1, CONNECTIONS)
    still_serving(server)
