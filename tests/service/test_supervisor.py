"""`weightsmith serve`'s supervisor restarts a crashed child with backoff (issue 19)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from service.supervisor import ChildSpec, Supervisor

STEADY = ChildSpec("steady", [sys.executable, "-c", "import time; time.sleep(60)"])


def crashing(code: int) -> ChildSpec:
    return ChildSpec("crasher", [sys.executable, "-c", f"raise SystemExit({code})"])


def crashing_once(marker: Path) -> ChildSpec:
    """Exits 1 on its first start (no marker yet), then runs like a healthy child."""
    script = (f"import pathlib, sys, time; m = pathlib.Path({str(marker)!r})\n"
              "if not m.exists(): m.touch(); sys.exit(1)\n"
              "time.sleep(60)")
    return ChildSpec("flaky", [sys.executable, "-c", script])


def test_a_child_that_crashes_once_is_started_again_and_the_others_keep_running(
    tmp_path: Path,
) -> None:
    sup = Supervisor([STEADY, crashing_once(tmp_path / "marker")], backoff_start_s=0.1)
    sup.start()
    steady_pid = sup.procs["steady"].pid
    first_flaky = sup.procs["flaky"]

    def stop_once_restarted() -> None:
        deadline = time.monotonic() + 30
        while sup.restarts.get("flaky", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # long enough to see it stay up
        sup._stop_requested = 15

    watcher = threading.Thread(target=stop_once_restarted)
    watcher.start()
    try:
        assert sup._wait_for_event() is None  # ended by the "signal", not by a give-up
    finally:
        watcher.join()
        running = {name: proc.poll() is None for name, proc in sup.procs.items()}
        sup.stop()
    assert first_flaky.returncode == 1
    assert sup.restarts == {"flaky": 1}
    assert sup.backoffs == [("flaky", 0.1)]
    assert running == {"steady": True, "flaky": True}
    assert sup.procs["steady"].pid == steady_pid  # never restarted


def test_a_child_that_keeps_crashing_stops_everything_with_its_code() -> None:
    sup = Supervisor([STEADY, crashing(3)], backoff_start_s=0.05, max_crashes=3)
    assert sup.run() == 3
    assert sup.restarts == {"crasher": 2}  # started 3 times, crashed 3 times
    assert sup.backoffs == [("crasher", 0.05), ("crasher", 0.1)]  # doubling
    assert all(proc.poll() is not None for proc in sup.procs.values())
