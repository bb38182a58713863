"""One client's predict latency with and without held hostile connections, in the same run.

Usage: ``.venv/bin/python benchmarks/service/bench_held_predict.py [--mode api|serve|both]
[--sse 200] [--slow 100] [--seconds 10] [--rounds 3] [--quick]``

Issue 19's goal: with 200 open event streams and 100 slow-header or endless-chunked
connections held, `/healthz` p99 stays under 100 ms **and predict still meets its
single-client p99** (issue 4: <= 2 ms for one client, measured with wrk and one connection,
bench_predict.py). bench_starvation.py measured with a Python client, whose own latency and
jitter (a p99 of 12-28 ms even alone) hid the target; this script measures the way
bench_predict.py does: wrk, one connection, one thread, `--seconds` per run.

Each round, alternately: `/healthz` and predict alone; then the held set opened
(bench_starvation's Holder: `--sse` event streams following a job, half of `--slow`
trickling their headers a byte a second, half sending an endless chunked body) and the same
two runs while they are held, then the held set closed again. The figures of a round are
compared with each other (held / alone), never with another session's. The server runs with
long header and body deadlines (bench_starvation.HOLD_ENV) so that the connections stay held.

`serve` trains a job in its worker meanwhile (as a real embedded service would, and it is
the job the streams follow); `api` runs no worker. On a 2-core machine the training worker
takes one core: `serve`'s figures include that contention, `api`'s do not. ``--burn`` runs
a plain busy loop at the serve worker's niceness beside the service for the whole run (a
control: a busy second core without any of the product's training code).

Each predict run is measured twice, one after the other: by wrk, and by probe.py, a client of
its own that reports each request's own time and, from the same samples, the p99 as wrk
computes it (wrk corrects for coordinated omission: a stall counts once per request a steady
client would have sent during it; probe.py's docstring). The verdict is given for both.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import probe
import wrk
from bench_starvation import HEALTHZ_P99_MS, PREDICT_P99_MS, hold, seed, start

from service.cli.server_commands import SERVE_WORKER_NICENESS


def raw_request(path: str, body: bytes, key: str) -> bytes:
    """The predict request as wrk sends it, for probe.py."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def run_pair(base: str, predict: tuple[str, str], auth: dict[str, str], seconds: float,
             request: bytes, scratch: Path) -> dict[str, Any]:
    """wrk, one connection: /healthz then predict; then probe.py's predict; their figures
    and the load average."""
    healthz = wrk.run(f"{base}/healthz", "", {}, connections=1, threads=1, seconds=seconds,
                      method="GET")
    url, body = predict
    pred = wrk.run(url, body, {**auth, "Content-Type": "application/json"}, connections=1,
                   threads=1, seconds=seconds)
    for name, res in (("healthz", healthz), ("predict", pred)):
        if res.non2xx or res.socket_errors:
            raise AssertionError(f"{name}: {res.non2xx} non-2xx, {res.socket_errors} socket "
                                 "errors")
    own = probe.run(int(base.rsplit(":", 1)[1]), seconds, request, scratch)
    return {"healthz_p50_ms": healthz.p50_ms, "healthz_p99_ms": healthz.p99_ms,
            "healthz_max_ms": healthz.max_ms, "predict_p50_ms": pred.p50_ms,
            "predict_p99_ms": pred.p99_ms, "predict_max_ms": pred.max_ms,
            "predict_per_s": round(pred.ok_per_s, 1), "probe_p50_ms": own.p50_ms,
            "probe_p99_ms": own.p99_ms, "probe_corrected_p99_ms": own.corrected_p99_ms,
            "probe_max_ms": own.max_ms, "probe_stalls_over_3ms": own.stalls_over_3ms,
            "load": harness.load()}


@contextlib.contextmanager
def busy_loop(niceness: int) -> Iterator[None]:
    """A process spinning on one core at `niceness` until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c",
                             f"import os\nos.nice({niceness})\nwhile True: pass"])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def run(mode: str, sse: int, slow: int, seconds: float, rounds: int,
        burn: bool = False) -> dict[str, Any]:
    port = harness.free_port()
    with tempfile.TemporaryDirectory(prefix="ws-held-") as tmp:
        ctx, key = start(mode, Path(tmp), port)
        try:
            base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
            path, body, job_id = seed(base, key)
            predict = (f"{base}{path}", body.decode())
            request, scratch = raw_request(path, body, key), Path(tmp)
            out: list[dict[str, Any]] = []
            with busy_loop(SERVE_WORKER_NICENESS) if burn else contextlib.nullcontext():
                run_pair(base, predict, auth, 2.0, request, scratch)  # warm up: caches, pool
                for i in range(rounds):
                    alone = run_pair(base, predict, auth, seconds, request, scratch)
                    holder = hold(port, key, job_id, sse, slow)
                    try:
                        held = run_pair(base, predict, auth, seconds, request, scratch)
                        still_open = holder.still_open()
                    finally:
                        holder.close()
                    print(f"  {mode} round {i + 1}: alone {alone}\n"
                          f"  {' ' * len(mode)}          held  {held}  still open {still_open}",
                          flush=True)
                    out.append({"alone": alone, "held": held, "still_open": still_open})
                    time.sleep(1.0)  # the closed connections' cleanup
            return {"mode": mode + (" +burn" if burn else ""), "sse": sse, "slow": slow,
                    "seconds": seconds, "rounds": out, **summary(out)}
        finally:
            ctx.__exit__(None, None, None)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of each figure, and held / alone of the predict p99 per round."""
    def med(phase: str, name: str) -> float:
        return round(harness.median([r[phase][name] for r in rounds]), 3)

    names = ("healthz_p99_ms", "predict_p50_ms", "predict_p99_ms", "probe_p50_ms",
             "probe_p99_ms", "probe_corrected_p99_ms", "probe_stalls_over_3ms", "load")
    return {
        "alone": {n: med("alone", n) for n in names},
        "held": {n: med("held", n) for n in names},
        "predict_p99_held_over_alone": [
            round(r["held"]["predict_p99_ms"] / r["alone"]["predict_p99_ms"], 2)
            for r in rounds],
    }


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--mode", choices=("serve", "api", "both"), default="both")
    p.add_argument("--sse", type=int, default=200)
    p.add_argument("--slow", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--burn", action="store_true",
                   help="a busy loop at the serve worker's niceness beside the service")
    args = harness.parse(p)
    seconds, rounds = (3.0, 1) if args.quick else (args.seconds, args.rounds)
    modes = ("serve", "api") if args.mode == "both" else (args.mode,)
    results = [run(mode, args.sse, args.slow, seconds, rounds, args.burn) for mode in modes]

    def goal(r: dict[str, Any], p99: str) -> str:
        return harness.verdict(r["held"]["healthz_p99_ms"] < HEALTHZ_P99_MS
                               and r["held"][p99] <= PREDICT_P99_MS)

    harness.print_table(
        f"one client, one connection, {seconds:g} s per run, medians of {rounds} rounds; "
        f"{args.sse} SSE + {args.slow} slow connections held. wrk's p99 is corrected for "
        "coordinated omission; the probe's is each request's own (and corrected as wrk does)",
        ["mode", "healthz p99 alone", "held", "predict p50 alone", "held",
         "wrk p99 alone", "held", "goal", "probe p99 alone", "held", "corrected held",
         ">3 ms held", "goal", "load"],
        [[r["mode"], r["alone"]["healthz_p99_ms"], r["held"]["healthz_p99_ms"],
          r["alone"]["predict_p50_ms"], r["held"]["predict_p50_ms"],
          r["alone"]["predict_p99_ms"], r["held"]["predict_p99_ms"],
          goal(r, "predict_p99_ms"), r["alone"]["probe_p99_ms"], r["held"]["probe_p99_ms"],
          r["held"]["probe_corrected_p99_ms"], r["held"]["probe_stalls_over_3ms"],
          goal(r, "probe_p99_ms"), r["held"]["load"]]
         for r in results])
    harness.write_results("held_predict", {"runs": results})


if __name__ == "__main__":
    main()
