"""ASHA against no scheduler on builtin digits: epochs run and the best val_accuracy.

Usage: ``.venv/bin/python benchmarks/bench_sweep_asha.py [--quick]``

The sweep of ``examples/digits_sweep.json`` (27 random trials of up to 27 epochs, seed 7)
runs twice in process, one trial at a time, with the worker's own controller and runner on a
scratch SQLite database: once with its ASHA scheduler (grace 1, reduction factor 3), once with
``"scheduler": null``. Both draw the same 27 trials (random search is a pure function of the
seed), so the comparison is trial for trial. Epoch counts are deterministic, unlike times on a
shared machine; issue 15 asks for ASHA at most 35% of the epochs with its best val_accuracy
within 0.5 points. ``--quick``: 9 trials of up to 9 epochs. Other arguments of ``run_all.py``
are accepted and ignored. Writes ``benchmarks/results/bench_sweep_asha-<time>.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from core.sweeps import SweepSpec  # noqa: E402
from store import sweeps, tenants  # noqa: E402
from store.db import make_engine, make_session_factory  # noqa: E402
from store.migrate import upgrade_to_head  # noqa: E402
from store.models import Sweep  # noqa: E402
from store.sweep_resources import sweep_json  # noqa: E402
from worker.celery_app import TRAIN_TASK  # noqa: E402
from worker.runner import JobRunner  # noqa: E402
from worker.sweep_tasks import after_job, run_step  # noqa: E402

MAX_MESSAGES = 10_000  # a bound on the in-process queue


class Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_task(self, name: str, args: list[str], **_: Any) -> None:
        self.sent.append((name, args[0]))


def run_sweep(sessions: Any, settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    spec = SweepSpec.from_dict(body, max_trials=1000, max_concurrent=8)
    with sessions.begin() as s:
        tenant = tenants.get_or_create(s, "bench")
        sweep, _ = sweeps.create(s, tenant.id, spec.to_dict(), name="bench",
                                 idempotency_key=None, request_hash=None, deadline_at=None)
        sweep_id = sweep.id
    queue = Queue()
    run_step(queue, sessions, settings, sweep_id)
    for _ in range(MAX_MESSAGES):
        if not queue.sent:
            break
        name, arg = queue.sent.pop(0)
        if name == TRAIN_TASK:
            JobRunner(sessions, settings, arg, "bench").run()
            after_job(queue, sessions, settings, arg)
        else:
            run_step(queue, sessions, settings, arg)
    with sessions() as s:
        row = s.get(Sweep, sweep_id)
        assert row is not None
        out = sweep_json(row, sweeps.trials(s, sweep_id), sweeps.trial_jobs(s, sweep_id),
                         spec.objective, spec.epochs)
        out["per_trial_epochs"] = [int(t.epochs_run) for t in sweeps.trials(s, sweep_id)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args, _ = parser.parse_known_args()
    body = json.loads((ROOT / "examples" / "digits_sweep.json").read_text())
    body["search"]["max_concurrent"] = 1
    if args.quick:
        body["search"]["max_trials"] = 9
        body["base"]["training"]["epochs"] = 9
    plain = copy.deepcopy(body)
    plain["scheduler"] = None
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"WEIGHTSMITH_DATA_DIR": tmp})
        upgrade_to_head(settings.database_url)
        sessions = make_session_factory(make_engine(settings.database_url))
        results = {}
        for name, sent in (("asha", body), ("none", plain)):
            started = time.perf_counter()
            results[name] = run_sweep(sessions, settings, sent)
            results[name]["wall_s"] = time.perf_counter() - started
    asha, none = results["asha"], results["none"]
    ratio = asha["epochs_run"] / none["epochs_run"]
    gap = 100 * (none["best"]["value"] - asha["best"]["value"])
    print(f"{'scheduler':<10}{'trials':>8}{'pruned':>8}{'epochs':>8}{'best val_accuracy':>20}"
          f"{'best trial':>12}")
    for name, r in results.items():
        print(f"{name:<10}{r['trials']['total']:>8}{r['trials']['pruned']:>8}"
              f"{r['epochs_run']:>8}{r['best']['value']:>20.4f}{r['best']['trial']:>12}")
    print(f"ASHA ran {ratio:.1%} of the epochs (target <= 35%); best val_accuracy "
          f"{gap:+.2f} points behind (target <= 0.5)")
    print(f"per-trial epochs with ASHA: {asha['per_trial_epochs']}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (out / f"bench_sweep_asha-{stamp}.json").write_text(json.dumps(
        {"quick": args.quick, "epochs_ratio": ratio, "best_gap_points": gap,
         "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
