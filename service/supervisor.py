"""The child-process supervisor behind `weightsmith serve`.

Each child (API, worker, beat) runs in a process group of its own, so a Ctrl-C in the terminal
reaches only the supervisor, which then stops the children in order with SIGTERM, waits for
them, and escalates to SIGKILL after a grace period: a worker's warm shutdown would otherwise
wait for a long training job. The job loses nothing it checkpointed: its lease goes stale and
`reconcile` resumes it at the next start (docs/reliability.md).

A child that exits on its own is started again after a backoff (1 s, doubling up to 30 s; a
child that had run for a minute starts again from 1 s), so one crash (a worker killed by a bad
message or by the kernel's OOM killer) does not take the API and beat down with it. A child
that crashes `max_crashes` times in a row without such a minute stops everything with a
non-zero exit: a port in use or a broken setting must not hide behind a healthy-looking API.
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
BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a child that ran this long before it exited starts again at once-ish
MAX_CRASHES = 5
GRACE_S = 15.0  # from SIGTERM to SIGKILL: a Celery warm shutdown, gunicorn's graceful stop


@dataclass(frozen=True)
class ChildSpec:
    """One child: a name for messages and the argv to run."""

    name: str
    argv: Sequence[str]


class Supervisor:
    """Start children, forward SIGINT/SIGTERM to them, and report how they ended."""

    def __init__(self, children: Sequence[ChildSpec], *, env: Mapping[str, str] | None = None,
                 grace_s: float = GRACE_S, backoff_start_s: float = BACKOFF_START_S,
                 backoff_max_s: float = BACKOFF_MAX_S, stable_s: float = STABLE_S,
                 max_crashes: int = MAX_CRASHES) -> None:
        self.children = list(children)
        self.env = dict(os.environ if env is None else env)
        self.grace_s = grace_s
        self.backoff_start_s = backoff_start_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self.max_crashes = max_crashes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}  # per child, since the supervisor started
        self.backoffs: list[tuple[str, float]] = []  # (child, seconds) of each restart planned
        self._started_at: dict[str, float] = {}
        self._crashes: dict[str, int] = {}  # in a row, without a stable run between
        self._restart_at: dict[str, float] = {}
        self._stop_requested: int | None = None

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: ChildSpec) -> None:
        self.procs[child.name] = subprocess.Popen(
            list(child.argv), env=self.env, start_new_session=True
        )
        self._started_at[child.name] = time.monotonic()

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_requested = signum

    def run(self) -> int:
        """Start, wait until a signal or a child that keeps crashing, stop everything; the
        exit code."""
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
            print(f"weightsmith: {name} exited with code {code}, {self.max_crashes} times in a "
                  "row; stopped the others", file=sys.stderr)
            return code if code > 0 else 1
        return 0

    def _wait_for_event(self) -> tuple[str, int] | None:
        """Restart children that exit; (name, code) of one that keeps crashing, or None on a
        stop signal."""
        while self._stop_requested is None:
            now = time.monotonic()
            for child in self.children:
                given_up = self._tend(child, now)
                if given_up is not None:
                    return given_up
            time.sleep(POLL_S)
        return None

    def _tend(self, child: ChildSpec, now: float) -> tuple[str, int] | None:
        name = child.name
        if name in self._restart_at:
            if now >= self._restart_at[name]:
                del self._restart_at[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._spawn(child)
            return None
        code = self.procs[name].poll()
        if code is None:
            return None
        _signal_group(self.procs[name], signal.SIGKILL)  # its orphans: a pool child, say
        if now - self._started_at[name] >= self.stable_s:
            self._crashes[name] = 0
        crashes = self._crashes[name] = self._crashes.get(name, 0) + 1
        if crashes >= self.max_crashes:
            return name, code
        delay = min(self.backoff_start_s * 2 ** (crashes - 1), self.backoff_max_s)
        print(f"weightsmith: {name} exited with code {code}; starting it again in "
              f"{delay:g} s", file=sys.stderr, flush=True)
        self._restart_at[name] = now + delay
        self.backoffs.append((name, delay))
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
