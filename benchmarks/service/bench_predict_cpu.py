"""CPU per predict request in process: the app's own cost, without gunicorn, wrk or sockets.

Usage: ``.venv/bin/python benchmarks/service/bench_predict_cpu.py [--rounds 3] [--requests 3000]``

``bench_predict.py`` measures requests/s through ``weightsmith api`` against the Flask echo;
on a noisy 2-core box both move with the machine, and their ratio with them. This script
POSTs bench_predict's one-row request to the imported 64-64-10 model through Flask's test
client on PostgreSQL + Redis (a scratch database, a private redis-server, the rate limit on)
and reads this process's CPU clock around batches of requests: the median batch is the app's
CPU per request (plus the test client's, a constant). The bare echo app is measured the same
way, alternately, for scale. Run it from another commit's worktree to compare two commits.
"""

from __future__ import annotations

import harness
from bench_predict import RATE_LIMIT, digits_weights

BATCHES = 7


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--requests", type=int, default=3000, help="requests per round and app")
    args = harness.parse(p)
    with harness.app_in_process("bench-predict-cpu", WEIGHTSMITH_RATE_LIMIT=RATE_LIMIT) as (
        app, key
    ):
        from echo_app import app as echo

        from core.datasets import load_builtin

        client, echo_client = app.test_client(), echo.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        made = client.post("/v1/checkpoints", data=digits_weights(),
                           headers={**auth, "Content-Type": "application/x-npz"})
        assert made.status_code == 201, made.data
        url = f"/v1/checkpoints/{made.get_json()['id']}/predict"
        body = {"inputs": [load_builtin("digits").X[0].tolist()]}

        def predict() -> None:
            response = client.post(url, json=body, headers=auth)
            assert response.status_code == 200, response.data

        def echo_once() -> None:
            assert echo_client.post("/echo", json=body).status_code == 200

        for _ in range(300):  # warm-up: pools, the model cache, the rate limiter's chunks
            predict()
            echo_once()
        per_batch = max(1, args.requests // BATCHES)
        rounds: dict[str, list[float]] = {"api": [], "echo": []}
        for r in range(args.rounds):
            for name, call in (("api", predict), ("echo", echo_once)):
                rounds[name].append(harness.median(harness.cpu_batches(call, per_batch, BATCHES)))
            print(f"round {r + 1}/{args.rounds}: api {rounds['api'][-1]:.3f} ms, echo "
                  f"{rounds['echo'][-1]:.3f} ms of CPU per request; load {harness.load()}",
                  flush=True)
    api, bare = harness.median(rounds["api"]), harness.median(rounds["echo"])
    harness.print_table(
        f"POST predict in process (PostgreSQL + Redis); medians of {args.rounds} rounds",
        ["case", "CPU ms per request", "x echo"],
        [["api (Flask test client)", api, api / bare], ["echo", bare, 1.0]])
    harness.write_results("bench_predict_cpu", {"requests_per_round": args.requests,
                                                "rounds": rounds})


if __name__ == "__main__":
    main()
