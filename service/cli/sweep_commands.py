"""`weightsmith sweep submit FILE [--watch] | show ID | trials ID | cancel ID` (docs/sweeps.md).

``--watch`` redraws a table of the trials by status and the best so far, reading the sweep
once a second until it ends; the exit code is 0 when it succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from service.cli import client_view as view
from service.client import WeightsmithClient
from store.statuses import TERMINAL_STATUSES as TERMINAL

WATCH_INTERVAL_S = 1.0
COUNTS = ("total", "queued", "running", "succeeded", "pruned", "failed")


def summary_table(sweep: dict[str, Any]) -> Table:
    """One row: the sweep's status, trial counts, epochs against the budget, the best."""
    table = Table("id", "status", *COUNTS, "epochs", "best")
    best = sweep.get("best") or {}
    shown = (f"{best['metric']}={view.fmt_value(best['value'])} (trial {best['trial']}, "
             f"epoch {best['epoch']})") if best else ""
    trials = sweep.get("trials") or {}
    table.add_row(sweep["id"], view.status_text(sweep["status"]),
                  *(str(trials.get(k, 0)) for k in COUNTS),
                  f"{sweep.get('epochs_run', 0)}/{sweep.get('epochs_budget', 0)}", shown)
    return table


def trials_table(items: list[dict[str, Any]]) -> Table:
    names = sorted({k for t in items for k in (t.get("params") or {})})
    table = Table("trial", *names, "status", "epochs", "best", "attempts", "job")
    for t in items:
        best = t.get("best") or {}
        value = ", ".join(f"{k}={view.fmt_value(v)}" for k, v in best.items())
        table.add_row(str(t["index"]), *(view.fmt_value(t["params"].get(n)) for n in names),
                      Text(t["status"], style=view.STATUS_STYLE.get(t["status"], "")),
                      str(t["epochs_run"]), value, str(t["attempts"]), t.get("job_id") or "")
    return table


def watch(client: WeightsmithClient, sweep_id: str, as_json: bool,
          sleep: Callable[[float], None] = time.sleep) -> int:
    sweep = client.get_sweep(sweep_id)
    if as_json:
        while sweep["status"] not in TERMINAL:
            sleep(WATCH_INTERVAL_S)
            sweep = client.get_sweep(sweep_id)
        print(json.dumps(sweep))
    else:
        with Live(summary_table(sweep), console=view.console(), auto_refresh=False) as live:
            while sweep["status"] not in TERMINAL:
                sleep(WATCH_INTERVAL_S)
                sweep = client.get_sweep(sweep_id)
                live.update(summary_table(sweep), refresh=True)
            live.update(Group(summary_table(sweep),
                              trials_table(client.sweep_trials(sweep_id, "best"))),
                        refresh=True)
    return 0 if sweep["status"] == "succeeded" else 1


def register(sub: Any, add: Callable[..., argparse.ArgumentParser],
             client: Callable[[argparse.Namespace], WeightsmithClient],
             read_json: Callable[[str], Any], print_json: Callable[[Any], None]) -> None:
    """Add the sweep sub-commands to `sub` with client_commands' `add` helper."""

    def submit(args: argparse.Namespace) -> int:
        body = read_json(args.file)
        with client(args) as c:
            sweep = c.submit_sweep(body, idempotency_key=args.idempotency_key)
            if args.json and not args.watch:
                print_json(sweep)
            elif not args.json:
                view.console().print(f"submitted {sweep['id']} ({sweep['status']})")
            return watch(c, sweep["id"], args.json) if args.watch else 0

    def show(args: argparse.Namespace) -> int:
        with client(args) as c:
            sweep = c.get_sweep(args.sweep)
        print_json(sweep) if args.json else view.console().print(summary_table(sweep))
        return 0

    def trials(args: argparse.Namespace) -> int:
        with client(args) as c:
            items = c.sweep_trials(args.sweep, args.order)
        print_json(items) if args.json else view.console().print(trials_table(items))
        return 0

    def cancel(args: argparse.Namespace) -> int:
        with client(args) as c:
            sweep = c.cancel_sweep(args.sweep)
        print_json(sweep) if args.json else view.console().print(
            f"{sweep['id']}: cancel requested ({sweep['status']})")
        return 0

    p = add("submit", submit, "submit a sweep (JSON file, or - for stdin)", sub)
    p.add_argument("file")
    p.add_argument("--idempotency-key", help="submitting again with it returns the same sweep")
    p.add_argument("--watch", action="store_true", help="follow it: trials by status, best")
    add("show", show, "a sweep: status, trial counts, best trial", sub).add_argument("sweep")
    p = add("trials", trials, "a sweep's trials", sub)
    p.add_argument("sweep")
    p.add_argument("--order", choices=("index", "best"), default="index")
    add("cancel", cancel, "cancel a sweep (running trials stop at the next batch)",
        sub).add_argument("sweep")
