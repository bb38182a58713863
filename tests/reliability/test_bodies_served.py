"""Bodies through a real server (issue 19): limited by the bytes read, chunked or not.

`weightsmith api` runs with a 1 MiB body limit and a 2 s body timeout. A chunked body over
the limit used to be cut at the limit and parsed (a 100 MB chunked CSV answered 201 with its
first 64 MiB); now the ASGI front counts the bytes as they arrive and the answer is 413
naming `body`, as for a Content-Length over the limit. A body still arriving after the
timeout is a 408. Nothing is stored, and the server keeps answering.
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

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    served = ServedApi("api", Path(tmp_path_factory.mktemp("bodies")),
                       WEIGHTSMITH_MAX_UPLOAD_BYTES=str(LIMIT),
                       WEIGHTSMITH_BODY_TIMEOUT_S="2")
    served.start()
    try:
        yield served
    finally:
        served.stop()
        print(served.log())


def send_raw(port: int, head: str, chunks: Iterator[bytes], pause_s: float = 0.0) -> bytes:
    """Send `head` and the chunks (stopping when the server stops reading); the response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        with contextlib.suppress(OSError):
            for chunk in chunks:
                sock.sendall(chunk)
                if pause_s:
                    time.sleep(pause_s)
        response = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                response += data
        return response


def chunked_body(total: int, piece: bytes) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        sent += len(piece)
    yield b"0\r\n\r\n"


def problem_of(response: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/problem+json" in head.lower(), head
    return status, json.loads(body)


def head(method: str, path: str, key: str, content_type: str, framing: str) -> str:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\n{framing}\r\n\r\n")


def stored(server: ServedApi, what: str) -> list[object]:
    r = httpx.get(f"{server.url}/v1/{what}", headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200, r.text
    items: list[object] = r.json()["items"]
    return items


@pytest.mark.parametrize(("path", "content_type", "first"), [
    ("/v1/datasets?name=big", "text/csv", b"a,b,y\n"),
    ("/v1/jobs", "application/json", b"["),
    ("/v1/jobs:validate", "application/json", b"["),
], ids=["csv upload", "job submission", "validation"])
def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(
        server: ServedApi, path: str, content_type: str, first: bytes) -> None:
    piece = b"1,2,0\n" * 1000 if content_type == "text/csv" else b"0," * 3000
    chunks = iter([f"{len(first):x}\r\n".encode() + first + b"\r\n",
                   *chunked_body(3 * LIMIT, piece)])
    response = send_raw(server.port, head("POST", path, server.key, content_type,
                                          "Transfer-Encoding: chunked"), chunks)
    status, problem = problem_of(response)
    assert status == 413
    assert problem["errors"] == [{"field": "body", "message": problem["detail"]}]
    assert stored(server, "datasets") == [] and stored(server, "jobs") == []
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_content_length_over_the_limit_is_413_before_the_body_is_read(
        server: ServedApi) -> None:
    response = send_raw(server.port, head("POST", "/v1/datasets", server.key, "text/csv",
                                          f"Content-Length: {3 * LIMIT}"), iter([]))
    status, problem = problem_of(response)
    assert status == 413 and problem["errors"][0]["field"] == "body"  # type: ignore[index]
    assert stored(server, "datasets") == []


def test_a_body_slower_than_the_timeout_is_408(server: ServedApi) -> None:
    """One 10-byte chunk every 0.5 s: well under the limit, but still coming after 2 s."""
    chunks = chunked_body(10 * 20, b"1,2,0\n1,2,")
    first = iter([b"6\r\na,b,y\n\r\n", *chunks])
    response = send_raw(server.port, head("POST", "/v1/datasets?name=slow", server.key,
                                          "text/csv", "Transfer-Encoding: chunked"),
                        first, pause_s=0.5)
    status, problem = problem_of(response)
    assert status == 408 and problem["errors"][0]["field"] == "body"  # type: ignore[index]
    assert stored(server, "datasets") == []


def test_a_chunked_body_under_the_limit_is_stored_whole(server: ServedApi) -> None:
    rows = 2000
    body = b"a,b,y\n" + b"1,2,0\n3,4,1\n" * (rows // 2)
    chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
    framed = iter([f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks] + [b"0\r\n\r\n"])
    response = send_raw(server.port, head("POST", "/v1/datasets?name=whole", server.key,
                                          "text/csv", "Transfer-Encoding: chunked"
                                          "\r\nConnection: close"), framed)
    head_part, _, payload = response.partition(b"\r\n\r\n")
    assert b" 201 " in head_part.split(b"\r\n", 1)[0] + b" ", response[:500]
    assert json.loads(payload)["n_rows"] == rows
    names = [d["name"] for d in stored(server, "datasets")]  # type: ignore[index]
    assert names == ["whole"]
