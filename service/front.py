"""The ASGI front of the API: the network on an event loop, the Flask views on threads.

Under a threaded server a request holds one of the API's few threads from its first byte to
its last: 8 clients trickling their headers, sending an endless chunked body, or following
an event stream left `/healthz` and predict waiting (issue 19). Here gunicorn's asyncio
worker reads every request, and this front hands the Flask application only a request whose
body has fully arrived, on one of `threads` threads, and sends the answer from the loop:

- the body is read on the loop and counted by the bytes that arrive, chunked or not; past
  `max_body_bytes` the application is asked for its 413 at once (nothing is parsed, nothing
  stored), and a body still incomplete after `body_timeout_s` gets a 408. The application
  sees a `Content-Length` body that has fully arrived (`wsgi.input_terminated`): in memory
  up to `BUFFERED_BYTES`, beyond that in a temporary file (a dataset upload of up to 2 GiB
  must not be held in memory, let alone twice: issue 18).
- a response body with `__aiter__` (an event stream, service/event_stream.py) is iterated on
  the loop: a stream waits without a thread; any other body is collected on the thread, up
  to `BUFFERED_BYTES`, then handed over chunk by chunk.

The refusals (413, 408) are rendered by the Flask application itself, so every problem
document comes from service/errors.py: the front sets `REFUSAL_KEY` in the environ and
service/bodies.py raises the error before any view runs.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any, cast

from a2wsgi.wsgi import build_environ

from service.quiet import Quiet

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApp = Callable[..., Iterable[bytes]]

REFUSAL_KEY = "weightsmith.refused"
# A JSON answer, a page of metrics, a small checkpoint: sent in one message after one hop.
BUFFERED_BYTES = 1024 * 1024
_END = object()


class BodyRefused(Exception):
    """The request body cannot be accepted: `status` 413 (too large) or 408 (too slow)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Answer:
    """What a thread brings back from the application: status, headers, the body so far."""

    status: int
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes] = field(default_factory=list)
    rest: Iterator[bytes] | None = None  # more to fetch on a thread
    stream: Any = None  # an async iterable, served on the loop
    closer: Callable[[], None] | None = None


async def read_body(receive: Receive, scope: Scope, limit: int, timeout_s: float
                    ) -> tuple[IO[bytes], int]:
    """The whole request body (a file at its start) and its size, counted by the bytes
    received; BodyRefused past the limits. The caller closes the file."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyRefused(413, f"the request body of {int(value)} bytes is over the "
                              f"limit of {limit} bytes")
    # Written on the loop: a local file's writes land in the page cache, as fast as a copy.
    body = tempfile.SpooledTemporaryFile(max_size=BUFFERED_BYTES)  # noqa: SIM115 (returned)
    size = 0
    # One deadline for the whole body. Each wait is bounded by asyncio.timeout (a timer, not
    # asyncio.wait_for's task per message: ~70 µs of the loop per chunk of an endless chunked
    # body), and the deadline is checked again after every message: on Python 3.11 gunicorn's
    # own wait_for inside receive() can swallow the cancellation when a chunk lands as the
    # timer fires, and the body then read on to its end (a 10 s trickle parsed under a 2 s
    # deadline, seen under load).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            if loop.time() >= deadline:
                raise TimeoutError
            async with asyncio.timeout_at(deadline):
                message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("the client went away while sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyRefused(413, f"the request body is over the limit of {limit} bytes")
            if chunk:
                body.write(chunk)
            if not message.get("more_body", False):
                body.seek(0)
                return cast(IO[bytes], body), size
    except TimeoutError:
        body.close()
        raise BodyRefused(408, f"the request body did not arrive within {timeout_s:g} s "
                          f"({size} bytes came)") from None
    except BaseException:
        body.close()
        raise


class AsgiFront:
    """An ASGI application serving the WSGI application `wsgi` as described above."""

    def __init__(self, wsgi: WsgiApp, *, threads: int, max_body_bytes: int,
                 body_timeout_s: float) -> None:
        self.wsgi = wsgi
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not part of this API
            await send({"type": "websocket.close", "code": 1000})
            return
        refusal: BodyRefused | None = None
        try:
            body, size = await read_body(receive, scope, self.max_body_bytes,
                                         self.body_timeout_s)
        except BodyRefused as exc:
            body, size, refusal = io.BytesIO(), 0, exc
        except ConnectionResetError:
            return
        environ = _environ(scope, body, size, refusal)
        loop = asyncio.get_running_loop()
        # Counted from here to its answer's last byte: until then, stream fan-out and the
        # streams' polls wait (service/quiet.py).
        serving = Quiet.of(loop).request()
        try:
            try:
                answer = await loop.run_in_executor(self.executor, self._call, environ)
            finally:
                body.close()
            if answer.stream is not None:
                serving.done()  # following an event stream is work that can wait
            try:
                await self._send(answer, send, loop, closing=refusal is not None)
            except OSError:  # the client went away (gunicorn's ClientDisconnected)
                pass
            finally:
                if answer.closer is not None:
                    answer.closer()
        finally:
            serving.done()

    def _call(self, environ: dict[str, Any]) -> Answer:
        """Run the application on a thread until its body is in hand, or at least started."""
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [(status, headers)]
            return _no_write

        iterable = self.wsgi(environ, start_response)
        status, headers = started[0] if started else ("500 INTERNAL SERVER ERROR", [])
        answer = Answer(int(status.split(" ", 1)[0]),
                        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers])
        closer = getattr(iterable, "close", None)
        if hasattr(iterable, "__aiter__"):
            answer.stream, answer.closer = iterable, closer
            return answer
        iterator, size = iter(iterable), 0
        for chunk in iterator:
            answer.chunks.append(chunk)
            size += len(chunk)
            if size >= BUFFERED_BYTES:
                answer.rest, answer.closer = iterator, closer
                return answer
        if closer is not None:
            closer()
        return answer

    async def _send(self, answer: Answer, send: Send, loop: asyncio.AbstractEventLoop,
                    *, closing: bool) -> None:
        headers = answer.headers + ([(b"connection", b"close")] if closing else [])
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": headers})
        if answer.stream is None and answer.rest is None:
            await send({"type": "http.response.body", "body": b"".join(answer.chunks)})
            return
        for chunk in answer.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if answer.stream is not None:
            stream = answer.stream.__aiter__()
            try:
                async for data in stream:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            finally:
                if hasattr(stream, "aclose"):
                    await stream.aclose()  # the client left: stop following now
        else:
            while (chunk := await loop.run_in_executor(
                    self.executor, next, answer.rest, _END)) is not _END:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _environ(scope: Scope, body: IO[bytes], size: int, refusal: BodyRefused | None
             ) -> dict[str, Any]:
    environ: dict[str, Any] = build_environ(scope, body)  # type: ignore[arg-type]
    # The body has arrived: the application reads exactly these bytes.
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["CONTENT_LENGTH"] = str(size)
    environ["wsgi.input_terminated"] = True
    environ["wsgi.errors"] = sys.stderr
    if refusal is not None:
        environ[REFUSAL_KEY] = (refusal.status, refusal.detail)
    return environ


def _no_write(_data: bytes) -> None:
    raise RuntimeError("the WSGI write() callable is not supported; return an iterable")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
