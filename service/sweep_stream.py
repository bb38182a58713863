"""The body of `GET /v1/sweeps/{id}/events`: a sweep's events as Server-Sent Events.

The job stream's class (service/event_stream.py) with the sweep's rows: iterated
synchronously under a plain WSGI server, and asynchronously behind the ASGI front, where it
polls on the loop's executor between sleeps, so a waiting stream holds no request thread.
Sweeps change a few times per trial, so they skip the job streams' shared hub.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from service.event_stream import BATCH, Event, EventStream, encoded
from store.statuses import TERMINAL_STATUSES as TERMINAL


class SweepEventStream(EventStream):
    """The events of sweep ``job_id`` (the base class's name for the followed id)."""

    def _poll(self, after: int) -> tuple[list[Event], str | None]:
        from store import sweeps as store_sweeps
        from store.models import Sweep

        with self.sessions() as session:
            rows = store_sweeps.events_after(session, self.job_id, after, limit=BATCH)
            sweep = session.get(Sweep, self.job_id)
            status = None if sweep is None else str(sweep.status)
        return encoded(rows), status

    async def _follow(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        timing, after = self.timing, self.after
        started = last_sent = loop.time()
        yield self._retry()
        while True:
            events, status = await loop.run_in_executor(None, self._poll, after)
            for seq, chunk in events:
                yield chunk
                after = seq
                last_sent = loop.time()
            if len(events) == BATCH:
                continue
            if status is None or status in TERMINAL:
                return
            now = loop.time()
            if now - started >= timing.max_seconds:
                return
            if now - last_sent >= timing.heartbeat_seconds:
                yield b": heartbeat\n\n"
                last_sent = now
            await asyncio.sleep(timing.poll_seconds)
