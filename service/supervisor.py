"""The child-process supervisor behind `weightsmith serve`.

Each child (API, worker, beat) runs in a process group of its own, so a Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in order with SIGTERM, waits for
them, and escalates to SIGKILL after a grace period: a worker's warm shutdown would otherwise
wait for a long training job. The job loses nothing it checkpointed: its lease goes stale and
`reconcile` resumes it at the next start (docs/reliability.md).

If any child exits on its own the supervisor stops the others and exits non-zero, so a broken
worker never hides behind a healthy-looking API.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

POLL_S = 0.2


@dataclass(frozen=True)
class ChildSpec:
    """One child: a name for messages and the argv to run."""

    name: str
    argv: Sequence[str]


class Supervisor:
    """Start children, forward SIGINT/SIGTERM to them, and report how they ended."""

    def __init__(self, children: Sequence[ChildSpec], *, env: Mapping[str, str] | None = None,
                 grace_s: float = 15.0) -> None:
        self.children = list(children)
        self.env = dict(os.environ if env is None else env)
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_requested: int | None = None

    def start(self) -> None:
        for child in self.children:
            self.procs[child.name] = subprocess.Popen(
                list(child.argv), env=self.env, start_new_session=True
            )

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requested = signum

    def run(self) -> int:
        """Start, wait until a signal or a child's death, stop everything; the exit code."""
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            died = self._wait_for_event()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if died is not None:
            name, code = died
            print(f"weightsmith: {name} exited with code {code}; stopped the others",
                  file=sys.stderr)
            return code if code > 0 else 1
        return 0

    def _wait_for_event(self) -> tuple[str, int] | None:
        while self._stop_requested is None:
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None:
                    return name, code
            time.sleep(POLL_S)
        return None

    def stop(self) -> None:
        """SIGTERM every child, wait up to grace_s, then SIGKILL each child's whole group.

        Only the child itself gets SIGTERM: gunicorn and Celery stop their own workers in
        order, and a pool process killed first would abort the task it is running.
        """
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for proc in self.procs.values():
            remaining = max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=remaining)
        for proc in self.procs.values():
            # Also reap grandchildren (gunicorn and prefork workers) left in the group.
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
