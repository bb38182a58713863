"""One client on one keep-alive connection, one request after another: each request's own time.

Usage (as bench_held_predict.py runs it, in a process of its own):
``python benchmarks/service/probe.py PORT SECONDS REQUEST_FILE`` prints one JSON line.

wrk and this probe read the same requests differently. wrk (-c1) corrects its latency
histogram for *coordinated omission* (`stats_correct` in its wrk.c): for every request that
took longer than the run's mean interval between requests, it adds samples at that latency
minus one interval, minus two, ... down to one interval, the requests a client arriving at a
steady rate would have sent during the wait. Its p99 therefore answers "how late would a
steady stream of requests be", and one 10 ms stall among 15,000 half-millisecond requests
adds some 17 samples between 0.6 and 10 ms. This probe reports each request's own time
(`p99_ms`), and the same samples corrected as wrk corrects them (`corrected_p99_ms`), so
the two instruments can be compared sample for sample: the corrected figure follows wrk's.

The request is sent whole with one `sendall` (as wrk sends it); an answer is read to the end
of its `Content-Length`. The garbage collector is off: the probe's own pauses would otherwise
be counted as the server's.
"""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProbeResult:
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    corrected_p99_ms: float  # wrk's coordinated-omission correction applied to the samples
    stalls_over_3ms: int


def corrected(samples_ns: list[int], interval_ns: float) -> list[float]:
    """The samples plus wrk's synthetic ones (its stats_correct): for each sample s of at
    least two intervals, s - interval, s - 2 * interval, ... while above one interval."""
    out: list[float] = list(samples_ns)
    for sample in samples_ns:
        if sample < 2 * interval_ns:
            continue
        missed = sample - interval_ns
        while missed > interval_ns:
            out.append(missed)
            missed -= interval_ns
    return out


def summarize(samples_ns: list[int], elapsed_ns: int) -> ProbeResult:
    ordered = sorted(samples_ns)
    n = len(ordered)
    fixed = sorted(corrected(samples_ns, elapsed_ns / n))
    return ProbeResult(
        requests=n, p50_ms=round(ordered[n // 2] / 1e6, 3),
        p99_ms=round(ordered[min(n - 1, int(n * 0.99))] / 1e6, 3),
        max_ms=round(ordered[-1] / 1e6, 3),
        corrected_p99_ms=round(fixed[min(len(fixed) - 1, int(len(fixed) * 0.99))] / 1e6, 3),
        stalls_over_3ms=sum(s > 3_000_000 for s in ordered))


def measure(port: int, seconds: float, request: bytes) -> ProbeResult:
    """Requests back to back for `seconds`; raises on an answer that is not 200."""
    gc.disable()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray(1 << 16)
    view = memoryview(buffer)
    clock = time.perf_counter_ns
    samples: list[int] = []
    started = clock()
    end = started + int(seconds * 1e9)
    while (sent := clock()) < end:
        sock.sendall(request)
        got, need = 0, -1
        while need < 0 or got < need:
            n = sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("the server closed the connection")
            got += n
            if need < 0 and (head := buffer.find(b"\r\n\r\n", 0, got)) >= 0:
                if not buffer.startswith(b"HTTP/1.1 200 "):
                    raise AssertionError(f"answered {bytes(buffer[:200])!r}")
                at = buffer.lower().find(b"content-length:", 0, head)
                need = head + 4 + int(buffer[at + 15:buffer.find(b"\r\n", at)])
        samples.append(clock() - sent)
    sock.close()
    return summarize(samples, clock() - started)


def run(port: int, seconds: float, request: bytes, scratch: Path) -> ProbeResult:
    """measure() in a process of its own (its GIL and collector apart from the caller's)."""
    path = scratch / "probe-request.bin"
    path.write_bytes(request)
    out = subprocess.run([sys.executable, __file__, str(port), str(seconds), str(path)],
                         check=True, capture_output=True, text=True, timeout=seconds + 60)
    return ProbeResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> None:
    port, seconds, request = int(argv[1]), float(argv[2]), Path(argv[3]).read_bytes()
    result: dict[str, Any] = measure(port, seconds, request).__dict__
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
