"""`weightsmith batch-predict`: score a whole dataset, optionally follow it and save the result."""

from __future__ import annotations

import argparse
import json
from typing import Any

from service.cli.client_commands import JOB_NOT_OK, OK, _client, guarded


def cmd_batch_predict(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = client.submit_batch_prediction(
            args.dataset, model=args.model, alias=args.alias, version=args.version,
            checkpoint_id=args.checkpoint, job_id=args.job, format=args.format)
        if args.watch or args.output:
            for event in client.batch_prediction_events(batch["id"]):
                if event.event == "progress" and not args.json:
                    data = event.data
                    print(f"{data['rows_done']}/{data['rows_total']} rows "
                          f"({data['error_count']} errors)", flush=True)
            batch = client.get_batch_prediction(batch["id"])
        if args.output and batch["status"] == "succeeded":
            client.batch_prediction_result(batch["id"], args.output)
    if args.json:
        print(json.dumps(batch, indent=2))
    else:
        errors = f", {batch['error_count']} rows not scored" if batch["error_count"] else ""
        saved = f"; wrote {args.output}" if args.output and batch["status"] == "succeeded" \
            else ""
        print(f"{batch['id']}: {batch['status']}, {batch['rows_done']}/{batch['rows_total']} "
              f"rows{errors}{saved}")
    return OK if batch["status"] in ("queued", "running", "succeeded") else JOB_NOT_OK


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    help = "score every row of DATASET with a model, a checkpoint or a job's best checkpoint"
    p = commands.add_parser("batch-predict", parents=[common], help=help, description=help)
    p.set_defaults(handler=guarded(cmd_batch_predict))
    p.add_argument("dataset", metavar="DATASET", help="an uploaded dataset id or builtin:NAME")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME", help="a registered model")
    source.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint id")
    source.add_argument("--job", metavar="JOB", help="a job (its best checkpoint)")
    version = p.add_mutually_exclusive_group()
    version.add_argument("--alias", help="with --model: the version this alias points at")
    version.add_argument("--version", type=int, help="with --model: this version "
                                                     "(default: the newest)")
    p.add_argument("--format", choices=["csv", "npy"], default="csv")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="wait for the batch and write its result to FILE")
    p.add_argument("--watch", action="store_true", help="print progress until it ends")
