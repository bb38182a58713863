"""Predict through `weightsmith api` against a bare Flask JSON echo, alternately, with wrk.

Usage: ``.venv/bin/python benchmarks/service/bench_predict.py [--rounds 3] [--quick]
[--seconds 10] [--connections 16] [--alias]``

``--alias`` adds issue 16's comparison: the same model registered as a version with an alias,
predicted by alias (resolved per request) beside predict by checkpoint id.

Issue 4, "Performance": predict with a 64-64-10 model (64 inputs, a hidden layer of 64, 10
outputs; trained on the digits for two epochs, so the stored input standardisation is
applied), one row per request, through `weightsmith api` exactly as it ships (the CLI execs
gunicorn's asyncio worker and service/front.py, its default workers and threads) on
PostgreSQL + Redis, must reach
**>= 0.5x** the requests/s of ``echo_app.py`` under the same gunicorn command line, measured
in the same run; and one client's **p99 latency <= 2 ms**.

Each round runs wrk four times, alternating the two servers: one connection (latency), then
``--connections`` connections (throughput). Only 2xx responses count. The rate limit stays
on (counted in Redis, as in production) but is raised so that it does not refuse the load:
the shipped default of 50 requests/s per key is a policy, not a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness
import wrk

HERE = Path(__file__).resolve().parent
RATE_LIMIT = "1000000 per second"


def api_defaults() -> tuple[int, int]:
    """`weightsmith api`'s default --workers and --threads, read from the CLI itself."""
    from service.cli import server_commands

    p = argparse.ArgumentParser()
    server_commands.register(p.add_subparsers())
    args = p.parse_args(["api"])
    return int(args.workers), server_commands.api_threads(args)


def echo_argv(port: int) -> list[str]:
    """The gunicorn command line of `weightsmith api`, serving the echo app instead."""
    from service.cli.server_commands import api_argv

    workers, threads = api_defaults()
    argv = api_argv("127.0.0.1", port, workers, threads)
    assert argv[-1] == "service.asgi:app", argv
    return [*argv[:-1], "echo_app:asgi"]


def digits_weights() -> bytes:
    """A 64-64-10 MLP trained on the digits for two epochs, as a weights.npz."""
    from core.datasets import load_builtin
    from core.training import train

    data = load_builtin("digits")
    spec = {"model": {"layers": [{"type": "dense", "units": 64, "activation": "relu"},
                                 {"type": "dense", "units": 10}]},
            "training": {"epochs": 2, "batch_size": 32, "seed": 0}}
    return bytes(train(spec, data.X, data.y).weights_npz())


def register_alias(base: str, key: str, checkpoint_url: str, body: str) -> tuple[str, str]:
    """The imported checkpoint as version 1 of a model with alias `champion`: (the model's
    predict URL, its body), answering exactly what the checkpoint's predict answers."""
    import httpx

    auth = {"Authorization": f"Bearer {key}"}
    checkpoint = checkpoint_url.split("/")[-2]
    httpx.post(f"{base}/v1/models", json={"name": "bench"}, headers=auth).raise_for_status()
    httpx.post(f"{base}/v1/models/bench/versions", json={"checkpoint_id": checkpoint},
               headers=auth).raise_for_status()
    httpx.put(f"{base}/v1/models/bench/aliases/champion", json={"version": 1},
              headers=auth).raise_for_status()
    url = f"{base}/v1/models/bench/predict"
    alias_body = json.dumps({**json.loads(body), "alias": "champion"})
    by_alias = httpx.post(url, content=alias_body, headers={**auth, "Content-Type":
                                                            "application/json"}).json()
    by_id = httpx.post(checkpoint_url, content=body, headers={**auth, "Content-Type":
                                                              "application/json"}).json()
    assert by_alias["outputs"] == by_id["outputs"], (by_alias, by_id)
    return url, alias_body


def prepare(base: str, key: str) -> tuple[str, str]:
    """Import the model; return (predict URL, request body), checked once by hand."""
    import httpx

    from core.datasets import load_builtin

    auth = {"Authorization": f"Bearer {key}"}
    r = httpx.post(f"{base}/v1/checkpoints", content=digits_weights(), timeout=30,
                   headers={**auth, "Content-Type": "application/x-npz"})
    r.raise_for_status()
    url = f"{base}/v1/checkpoints/{r.json()['id']}/predict"
    body = json.dumps({"inputs": [load_builtin("digits").X[0].tolist()]})
    r = httpx.post(url, content=body, headers={**auth, "Content-Type": "application/json"})
    r.raise_for_status()
    assert len(r.json()["outputs"][0]) == 10, r.text
    return url, body


Server = tuple[str, Any, str]  # (URL, harness.CpuMeter, request body)


def measure(args: argparse.Namespace, servers: dict[str, Server],
            headers: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Rounds of wrk runs, alternating the servers: one connection, then many."""
    runs: dict[str, list[dict[str, Any]]] = {}
    seconds = 3.0 if args.quick else args.seconds
    for url, _, body in servers.values():  # warm up (pools, caches, the model)
        wrk.run(url, body, headers, connections=args.connections, threads=1, seconds=2)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}  (load {harness.load()})", flush=True)
        for clients in (1, args.connections):
            for name, (url, meter, body) in servers.items():
                row = wrk.run_metered(meter, url, body, headers, connections=clients,
                                      threads=1, seconds=seconds)
                runs.setdefault(f"{name}.c{clients}", []).append(row)
                print(f"  {name:<10} c={clients:<3} {row['ok_per_s']:8.0f} req/s  p50 "
                      f"{row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  non-2xx "
                      f"{row['non2xx']}  CPU ms/req {row['cpu_ms_per_request']}  "
                      f"load {row['load']:.2f}", flush=True)
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]], connections: int) -> dict[str, Any]:
    med: dict[str, dict[str, Any]] = {}
    for k, v in runs.items():
        med[k] = {f: harness.median([r[f] for r in v]) for f in ("ok_per_s", "p50_ms", "p99_ms")}
        med[k]["cpu_ms_per_request"] = {
            c: harness.median([r["cpu_ms_per_request"][c] for r in v])
            for c in v[0]["cpu_ms_per_request"]}
    many = f"c{connections}"
    # Per-round ratios (the two sides ran back to back): their median is steadier on a busy box.
    per_round = [a["ok_per_s"] / e["ok_per_s"]
                 for a, e in zip(runs[f"api.{many}"], runs[f"echo.{many}"], strict=True)]
    return {"median": med,
            "ratio_many": med[f"api.{many}"]["ok_per_s"] / med[f"echo.{many}"]["ok_per_s"],
            "ratio_one": med["api.c1"]["ok_per_s"] / med["echo.c1"]["ok_per_s"],
            "ratio_many_per_round": per_round,
            "api_p99_one_client_ms": med["api.c1"]["p99_ms"]}


def report(args: argparse.Namespace, s: dict[str, Any]) -> None:
    many = f"c{args.connections}"
    med = s["median"]
    rows = []
    for clients, label in ((many, f"{args.connections} connections"), ("c1", "1 connection")):
        for name in [n.split(".")[0] for n in med if n.endswith("." + clients)]:
            m = med[f"{name}.{clients}"]
            ratio = m["ok_per_s"] / med[f"echo.{clients}"]["ok_per_s"]
            target, ok = ("", "")
            if name == "api" and clients == many:
                target, ok = ">=0.5x echo", harness.verdict(ratio >= 0.5)
            elif name == "api":
                target, ok = "p99<=2ms", harness.verdict(m["p99_ms"] <= 2.0)
            cpu = m["cpu_ms_per_request"]
            rows.append([f"{label}: {name}", m["ok_per_s"], ratio, m["p50_ms"], m["p99_ms"],
                         sum(v for k, v in cpu.items() if k != "wrk"), target, ok])
    harness.print_table(
        f"predict 64-64-10, one row; medians of {args.rounds} rounds",
        ["case", "req/s", "x echo", "p50 ms", "p99 ms", "server CPU ms/req", "target",
         "verdict"], rows)
    print("  per-round api/echo ratios at "
          f"{args.connections} connections: "
          + ", ".join(f"{x:.2f}" for x in s["ratio_many_per_round"]))
    for name, m in med.items():
        print(f"  CPU ms per request, {name}: {m['cpu_ms_per_request']}")


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    p.add_argument("--connections", type=int, default=16,
                   help="concurrent connections of the throughput runs")
    p.add_argument("--alias", action="store_true",
                   help="also predict through a model alias (POST /v1/models/{name}/predict) "
                        "on the same API process, to compare with predict by checkpoint id")
    p.add_argument("--diagnose", action="store_true",
                   help="also run the API with its rate limit counted in process memory "
                        "(the embedded mode's limiter) to price the Redis round trip")
    args = harness.parse(p)
    workers, threads = api_defaults()
    print(f"gunicorn asgi worker, {workers} workers x {threads} threads (weightsmith api's "
          f"defaults); load {harness.load()}", flush=True)
    with harness.scratch_postgres() as db, harness.private_redis() as broker, \
            tempfile.TemporaryDirectory(prefix="ws-bench-predict-") as tmp:
        from store.db import make_engine, make_session_factory

        engine = make_engine(db)
        key = harness.create_key(make_session_factory(engine))
        engine.dispose()
        env = harness.service_env(Path(tmp), db, broker.url, WEIGHTSMITH_RATE_LIMIT=RATE_LIMIT)
        ports = {"api": harness.free_port(), "echo": harness.free_port(),
                 "api-memrl": harness.free_port()}
        echo_env = {**env, "PYTHONPATH": f"{HERE}:{harness.ROOT}"}
        with contextlib.ExitStack() as stack:
            procs = {
                "api": stack.enter_context(harness.child(
                    api_command(ports["api"]), "predict-api", env)),
                "echo": stack.enter_context(harness.child(
                    echo_argv(ports["echo"]), "predict-echo", echo_env)),
            }
            if args.diagnose:
                procs["api-memrl"] = stack.enter_context(harness.child(
                    api_command(ports["api-memrl"]), "predict-api-memrl",
                    {**env, "WEIGHTSMITH_BROKER_URL": "filesystem://"}))
            for name in procs:
                harness.wait_port(ports[name])
            base = f"http://127.0.0.1:{ports['api']}"
            api_url, body = prepare(base, key)
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            servers: dict[str, Server] = {
                "api": (api_url, harness.CpuMeter({"api": procs["api"].pid,
                                                   "redis": broker.pid}, db), body),
                "echo": (f"http://127.0.0.1:{ports['echo']}/echo",
                         harness.CpuMeter({"echo": procs["echo"].pid}), body),
            }
            if args.alias:
                alias_url, alias_body = register_alias(base, key, api_url, body)
                servers["api-alias"] = (alias_url, harness.CpuMeter(
                    {"api": procs["api"].pid, "redis": broker.pid}, db), alias_body)
            if args.diagnose:
                servers["api-memrl"] = (
                    api_url.replace(base, f"http://127.0.0.1:{ports['api-memrl']}"),
                    harness.CpuMeter({"api": procs["api-memrl"].pid}, db), body)
            runs = measure(args, servers, headers)
    s = summarise(runs, args.connections)
    report(args, s)
    harness.write_results("bench_predict", {
        "workers": workers, "threads": threads, "rounds": args.rounds,
        "seconds_per_run": 3.0 if args.quick else args.seconds,
        "connections": args.connections, "runs": runs, **s})


def api_command(port: int) -> list[str]:
    return [sys.executable, "-m", "service.cli", "api", "--port", str(port)]


if __name__ == "__main__":
    main()
