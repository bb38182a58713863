"""CPU per predict request in process: the app's own cost, without gunicorn, wrk or sockets.

Usage: ``.venv/bin/python benchmarks/service/bench_predict_cpu.py [--rounds 3] [--requests 3000]
[--alias]``

``bench_predict.py`` measures requests/s through ``weightsmith api`` against the Flask echo;
on a noisy 2-core box both move with the machine, and their ratio with them. This script
POSTs bench_predict's one-row request to the imported 64-64-10 model through Flask's test
client on PostgreSQL + Redis (a scratch database, a private redis-server, the rate limit on)
and reads this process's CPU clock around batches of requests: the median batch is the app's
CPU per request (plus the test client's, a constant). The bare echo app is measured the same
way, alternately, for scale. Run it from another commit's worktree to compare two commits.

``--alias`` also predicts through a model alias (``POST /v1/models/{name}/predict`` with
``"alias": "champion"``, the same checkpoint registered as version 1), alternately with the
others: issue 16's "predict by alias costs no more than predict by checkpoint id".
"""

from __future__ import annotations

import harness
from bench_predict import RATE_LIMIT, digits_weights

BATCHES = 7


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--requests", type=int, default=3000, help="requests per round and app")
    p.add_argument("--alias", action="store_true",
                   help="also predict by model alias (the same checkpoint as version 1)")
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

        calls = {"api": predict, "echo": echo_once}
        if args.alias:
            for method, path, payload in (
                    ("POST", "/v1/models", {"name": "bench"}),
                    ("POST", "/v1/models/bench/versions", {"checkpoint_id": url.split("/")[-2]}),
                    ("PUT", "/v1/models/bench/aliases/champion", {"version": 1})):
                made = client.open(path, method=method, json=payload, headers=auth)
                assert made.status_code in (200, 201), made.data
            alias_body = {**body, "alias": "champion"}

            def predict_alias() -> None:
                response = client.post("/v1/models/bench/predict", json=alias_body,
                                       headers=auth)
                assert response.status_code == 200, response.data

            calls["api-alias"] = predict_alias
        for _ in range(300):  # warm-up: pools, the model cache, the rate limiter's chunks
            for call in calls.values():
                call()
        per_batch = max(1, args.requests // BATCHES)
        rounds: dict[str, list[float]] = {name: [] for name in calls}
        for r in range(args.rounds):
            for name, call in calls.items():
                rounds[name].append(harness.median(harness.cpu_batches(call, per_batch, BATCHES)))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{name} {rounds[name][-1]:.3f} ms" for name in calls)
                + f" of CPU per request; load {harness.load()}", flush=True)
    api, bare = harness.median(rounds["api"]), harness.median(rounds["echo"])
    rows = [["api (Flask test client)", api, api / bare], ["echo", bare, 1.0]]
    if args.alias:
        alias = harness.median(rounds["api-alias"])
        rows.insert(1, ["api by alias", alias, alias / bare])
        per_round = [a / i for a, i in zip(rounds["api-alias"], rounds["api"], strict=True)]
        print("per-round alias/id CPU ratios: " + ", ".join(f"{x:.3f}" for x in per_round))
    harness.print_table(
        f"POST predict in process (PostgreSQL + Redis); medians of {args.rounds} rounds",
        ["case", "CPU ms per request", "x echo"], rows)
    harness.write_results("bench_predict_cpu", {"requests_per_round": args.requests,
                                                "rounds": rounds})


if __name__ == "__main__":
    main()
