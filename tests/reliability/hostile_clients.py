"""Connections that used to hold the API's threads, and a latency probe to run beside them.

Shared by tests/reliability/test_starvation.py (small counts) and
benchmarks/service/bench_starvation.py (the full goal of issue 19). Loopback only; every
count, wait and loop is bounded by its caller.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Held:
    """What a `Holder` holds open, by kind, and the streams' first bytes."""

    sse: list[socket.socket] = field(default_factory=list)
    slow_headers: list[socket.socket] = field(default_factory=list)
    endless_chunked: list[socket.socket] = field(default_factory=list)


class Holder:
    """Opens event streams and slow connections to `port` and keeps them going.

    A slow-header connection sends one more header byte, and an endless chunked body one more
    1-byte chunk, to every socket each `trickle_s`, from one thread, until `close()`.
    """

    def __init__(self, port: int, trickle_s: float = 1.0) -> None:
        self.port = port
        self.trickle_s = trickle_s
        self.held = Held()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def open_sse(self, count: int, path: str, key: str) -> None:
        """`count` event streams, each checked to have answered 200 text/event-stream."""
        request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                   f"Authorization: Bearer {key}\r\n\r\n").encode()
        for _ in range(count):
            sock = self._connect()
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    raise AssertionError(f"an event stream closed before its headers: {head!r}")
                head += data
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status + b" " or b"text/event-stream" not in head.lower():
                raise AssertionError(f"an event stream answered {head[:200]!r}")
            self.held.sse.append(sock)

    def open_slow_headers(self, count: int) -> None:
        for _ in range(count):
            sock = self._connect()
            sock.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.held.slow_headers.append(sock)

    def open_endless_chunked(self, count: int) -> None:
        for _ in range(count):
            sock = self._connect()
            sock.sendall(b"POST /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.held.endless_chunked.append(sock)

    def start(self) -> None:
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(self.trickle_s):
            for sock in self.held.slow_headers:
                with contextlib.suppress(OSError):
                    sock.send(b"a")
            for sock in self.held.endless_chunked:
                with contextlib.suppress(OSError):
                    sock.send(b"1\r\na\r\n")

    def still_open(self) -> dict[str, int]:
        """How many of each kind the server has not closed (no EOF or reset waiting)."""
        counts = {}
        for kind in ("sse", "slow_headers", "endless_chunked"):
            alive = 0
            for sock in getattr(self.held, kind):
                sock.setblocking(False)
                try:
                    while sock.recv(65536):
                        pass
                    closed = True  # recv returned b"": EOF
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                sock.setblocking(True)
                alive += not closed
            counts[kind] = alive
        return counts

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for kind in ("sse", "slow_headers", "endless_chunked"):
            for sock in getattr(self.held, kind):
                with contextlib.suppress(OSError):
                    sock.close()


def timed_requests(port: int, method: str, path: str, count: int, *,
                   headers: Mapping[str, str] | None = None, body: bytes | None = None,
                   timeout: float = 10.0) -> list[float]:
    """`count` requests one after another on one keep-alive connection: seconds each.

    Raises if any answer is not 200 or does not come within `timeout`.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    seconds = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
            seconds.append(time.perf_counter() - started)
            if response.status != 200:
                raise AssertionError(f"{method} {path} answered {response.status}: {data[:300]!r}")
    finally:
        conn.close()
    return seconds

