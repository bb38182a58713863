"""Requests first: work on the API's event loop that can wait, waits for a quiet moment.

One event loop per API process reads every connection, writes every answer and follows every
event stream (service/front.py). A commit of a job that 200 streams follow wakes all 200, and
each writes its events: tens of microseconds each, several times that in `weightsmith serve`,
where training takes the other core. A predict call that arrived meanwhile shared the loop
and the GIL with that fan-out, and its tail was the fan-out's (issue 19).

The front counts the requests it is serving, from a fully arrived body to the last byte of the
answer (a request still sending its body is not counted: an endless chunked body would keep
the count up forever). Work that can wait -- waking event streams, reading the heads of the
jobs they follow -- first awaits `Quiet.wait`: until no request is being served, or until its
deadline, so that under continuous load it is delayed, never starved.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar


class Serving:
    """One request being served; `done()` (idempotent) stops counting it."""

    __slots__ = ("_quiet",)

    def __init__(self, quiet: Quiet) -> None:
        self._quiet: Quiet | None = quiet
        quiet.serving += 1

    def done(self) -> None:
        if self._quiet is not None:
            self._quiet._served()
            self._quiet = None


class Quiet:
    """How many requests an event loop is serving, and a wait for none."""

    _of: ClassVar[dict[int, Quiet]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.serving = 0
        self._waiters: list[asyncio.Future[None]] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Quiet:
        """The loop's one instance (ids of closed loops are reused: the loop is compared)."""
        quiet = cls._of.get(id(loop))
        if quiet is None or quiet.loop is not loop:
            quiet = cls._of[id(loop)] = cls(loop)
        return quiet

    def request(self) -> Serving:
        """Count a request as being served until its `Serving.done()`."""
        return Serving(self)

    def _served(self) -> None:
        self.serving -= 1
        if self.serving == 0:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, deadline: float) -> bool:
        """Once no request is being served: True; at loop time `deadline`: False."""
        if self.serving == 0:
            return True
        if self.loop.time() >= deadline:
            return False
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
