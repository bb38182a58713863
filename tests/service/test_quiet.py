"""Requests first (service/quiet.py): the front counts the requests it serves, and work that
can wait -- the event hub's reads and wake-ups -- waits for none, or for its deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

from service.front import AsgiFront
from service.quiet import Quiet


def test_wait_returns_at_once_when_no_request_is_served() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        quiet = await Quiet.of(loop).wait(started + 5.0)
        return quiet, loop.time() - started

    quiet, waited = asyncio.run(main())
    assert quiet and waited < 0.05


def test_wait_lasts_until_the_last_request_is_served() -> None:
    async def main() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        quiet = Quiet.of(loop)
        first, second = quiet.request(), quiet.request()
        waiter = asyncio.create_task(quiet.wait(loop.time() + 5.0))
        await asyncio.sleep(0.05)
        first.done()
        first.done()  # idempotent: counted off once
        await asyncio.sleep(0.05)
        still_waiting = not waiter.done()
        started = loop.time()
        second.done()
        assert await waiter  # quiet, not the deadline
        return still_waiting, quiet.serving == 0, loop.time() - started

    still_waiting, none_served, waited = asyncio.run(main())
    assert still_waiting and none_served
    assert waited < 0.05


def test_wait_gives_up_at_its_deadline_under_continuous_load() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        quiet = Quiet.of(loop)
        serving = quiet.request()
        started = loop.time()
        was_quiet = await quiet.wait(started + 0.2)
        serving.done()
        return was_quiet, loop.time() - started

    was_quiet, waited = asyncio.run(main())
    assert not was_quiet and 0.15 <= waited < 1.0


def _scope(path: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": [],
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}


class _Stream:
    """An event-stream body: async iterable, as service/event_stream.py's."""

    def __init__(self, seen: list[int], quiet: list[Quiet]) -> None:
        self.seen, self.quiet = seen, quiet

    def __iter__(self) -> Iterable[bytes]:
        raise AssertionError("the front follows streams asynchronously")

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.seen.append(self.quiet[0].serving)  # while the stream is being followed
        yield b"data: 1\n\n"

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()


def test_the_front_counts_a_request_until_its_answer_and_a_stream_only_until_it_starts(
) -> None:
    """A plain answer is counted while its view runs; an event stream stops counting once
    it is being followed (it is work that can wait), and nothing stays counted after."""
    seen: list[int] = []
    quiet: list[Quiet] = []
    lock = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            seen.append(quiet[0].serving)  # read from the view's thread: a plain int
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/events":
            return _Stream(seen, quiet)
        return [b"ok"]

    async def call(front: AsgiFront, path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await front(_scope(path), receive, send)
        return sent

    async def main() -> int:
        quiet.append(Quiet.of(asyncio.get_running_loop()))
        front = AsgiFront(app, threads=2, max_body_bytes=1000, body_timeout_s=5.0)
        plain = await call(front, "/plain")
        stream = await call(front, "/events")
        assert plain[0]["status"] == 200 and plain[-1]["body"] == b"ok"
        assert b"".join(m.get("body", b"") for m in stream) == b"data: 1\n\n"
        return quiet[0].serving

    assert asyncio.run(main()) == 0
    # The plain view and the stream's view were counted; the stream, once followed, was not.
    assert seen == [1, 1, 0], seen
