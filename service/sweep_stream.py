"""The body of `GET /v1/sweeps/{id}/events`: a sweep's events as Server-Sent Events.

The job stream (service/event_stream.py) with the sweep's rows: its own poll, and its own
wait between polls. Sweeps change a few times per trial, so a waiting sweep stream sleeps one
poll interval and reads again rather than joining the job streams' shared hub, which reads
job heads; everything else (replay, batches, heartbeats, the end) is the job stream's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.event_stream import BATCH, POLL, Event, EventStream, Update, encoded


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

    async def _wait(self, loop: asyncio.AbstractEventLoop, after: int,
                    timeout: float) -> Update | Any | None:
        """One poll interval (or less, when the heartbeat or the end is due first)."""
        poll = self.timing.poll_seconds
        await asyncio.sleep(max(0.0, min(poll, timeout)))
        return POLL if timeout >= poll else None
