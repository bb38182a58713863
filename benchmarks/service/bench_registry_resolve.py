"""CPU per cached model-predict resolution (service/registry_cache.py) against one Redis round trip.

Usage: ``.venv/bin/python benchmarks/service/bench_registry_resolve.py [--rounds 5]``

bench_predict_cpu.py --alias measures the whole request (~0.45 ms), whose round-to-round noise
on a shared box (+-10 %) hides a few microseconds. This isolates the part that differs: a
cached alias resolve (a zero-timeout poll of the subscription's socket and a dict lookup),
measured alternately with one packed MGET on a private redis-server, the per-request check
the generation-token protocol made before (issue 16).
"""

from __future__ import annotations

import time

import harness

CALLS = 20_000
KEY = ("tenant", "model", "alias", "champion")


def main() -> None:
    args = harness.parse(harness.parser(__doc__))
    from service.registry_cache import RegistryCache

    with harness.private_redis() as server:
        cache = RegistryCache(server.url)
        sub = cache.subscription()
        while sub is not None and not sub.live:
            time.sleep(0.01)
        cache.resolve(KEY, "tenant", "model", lambda: 1)
        conn = cache.client.connection_pool.make_connection()
        packed = conn.pack_command("MGET", "token", "in-flight")

        def resolve() -> None:
            cache.resolve(KEY, "tenant", "model", lambda: 1)

        def mget() -> None:
            conn.send_packed_command(packed, check_health=False)
            conn.read_response()

        calls = {"resolve": resolve, "mget": mget}
        rounds: dict[str, list[float]] = {name: [] for name in calls}
        for r in range(args.rounds):
            for name, call in calls.items():
                rounds[name].append(1000 * harness.median(
                    harness.cpu_batches(call, CALLS // 7)))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{name} {rounds[name][-1]:.2f} us" for name in calls)
                + f" of CPU per call; load {harness.load()}", flush=True)
        cache.close()
    resolved, mget_us = harness.median(rounds["resolve"]), harness.median(rounds["mget"])
    harness.print_table(f"CPU per call, medians of {args.rounds} rounds", ["case", "us", "x"],
                        [["cached resolve (pushed invalidation)", resolved, 1.0],
                         ["one MGET round trip", mget_us, mget_us / resolved]])
    harness.write_results("bench_registry_resolve", {"calls": CALLS, "rounds": rounds})


if __name__ == "__main__":
    main()
