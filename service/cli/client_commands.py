"""Client sub-commands of `weightsmith` (README: the tour), over HTTP with WEIGHTSMITH_URL and
WEIGHTSMITH_API_KEY (or --url / --api-key).

Exit codes, for scripts: 0 ok; 1 the watched job ended failed, cancelled or diverged;
2 usage (bad arguments, unreadable files); 3 the API said no (the problem detail and field
errors go to stderr) or could not be reached. `--json` prints machine-readable JSON instead
of tables (one JSON object per line for the event stream of `watch`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.markup import escape

from core.datasets.formats import suffixes
from export.onnx.opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from service.cli import client_view as view
from service.cli import sweep_commands
from service.client import DEFAULT_URL, WeightsmithAPIError, WeightsmithClient, server_url

OK, JOB_NOT_OK, USAGE, API_ERROR = 0, 1, 2, 3


class UsageError(Exception):
    """A local mistake (a missing file, bad JSON): exit code 2."""


def _client(args: argparse.Namespace) -> WeightsmithClient:
    return WeightsmithClient(args.url, args.api_key, timeout=args.timeout)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None if isinstance(value, list) else 2))


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None


def read_inputs(path: str) -> Any:
    """Rows to predict: JSON (a list, or {"inputs": [...]}), CSV of numbers, or .npy."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False).tolist()
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
    if suffix == ".csv":
        try:
            rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
            if rows and not _numeric(rows[0]):
                rows = rows[1:]  # a header line
            return [[float(v) for v in row] for row in rows if row]
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path} as numeric CSV: {exc}") from None
    body = _read_json(path)
    return body["inputs"] if isinstance(body, dict) and "inputs" in body else body


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _watch(client: WeightsmithClient, job_id: str, as_json: bool) -> int:
    job = client.get_job(job_id)
    events = client.events(job_id)
    if as_json:
        for event in events:
            print(json.dumps({"id": event.id, "event": event.event, "data": event.data}),
                  flush=True)
    else:
        view.watch_progress(job, events, view.console(), lambda: client.get_job(job_id))
    job = client.get_job(job_id)
    if not as_json:
        reason = view.ending(job)
        best = job.get("best") or {}
        summary = ", ".join(f"{k}={view.fmt_value(best[k])}" for k in ("epoch", *view.LEARNING)
                            if k in best)
        view.console().print(f"{job['id']} {job['status']} {reason}"
                             + (f"  best: {summary}" if summary else ""), highlight=False)
    ok = job["status"] == "succeeded" and job.get("stop_reason") != "diverged"
    return OK if ok else JOB_NOT_OK


def local_dataset(spec_path: str, spec: dict[str, Any]) -> str | None:
    """A spec's `dataset` naming a file beside the spec (e.g. "regression.csv") to upload."""
    name = spec.get("dataset")
    if not isinstance(name, str) or spec_path == "-" or ":" in name:
        return None
    if Path(name).suffix.lower() not in suffixes():
        return None
    path = Path(spec_path).parent / name
    return str(path) if path.is_file() else None


# -- the commands ------------------------------------------------------------------------------
def _read_spec(path: str) -> dict[str, Any]:
    spec = _read_json(path)
    if not isinstance(spec, dict):
        raise UsageError(f"{path}: a job spec is a JSON object")
    return spec


def upload_file(client: WeightsmithClient, path: str, *, name: str | None = None,
                target: str | None = None, features_only: bool = False) -> dict[str, Any]:
    """Upload a dataset file: a large one in resumable pieces, with a progress bar."""
    with view.upload_progress(Path(path).name, Path(path).stat().st_size) as progress:
        return client.upload_dataset(path, name=name, target=target,
                                     features_only=features_only, progress=progress)


def with_local_dataset(client: WeightsmithClient, args: argparse.Namespace,
                       spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` training on `--dataset FILE` or on a dataset file beside the spec, uploaded
    first (the same bytes again return the dataset already stored: nothing is stored twice)."""
    upload = args.dataset or local_dataset(args.spec, spec)
    if not upload:
        return spec
    if not Path(upload).is_file():
        raise UsageError(f"no such file: {upload}")
    dataset = upload_file(client, upload, target=args.target)
    if not args.json:
        view.console().print(f"uploaded {upload} as {dataset['id']}")
    return {**spec, "dataset": dataset["id"]}


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    with _client(args) as client:
        spec = with_local_dataset(client, args, spec)
        job = client.submit(spec, idempotency_key=args.idempotency_key)
        if args.json and not args.watch:
            _print_json(job)
        elif not args.json:
            view.console().print(f"submitted {job['id']} ({job['status']})")
        return _watch(client, job["id"], args.json) if args.watch else OK


def cmd_lr_range_test(args: argparse.Namespace) -> int:
    """Start a range test, wait for it (unless --no-wait), print its series and suggestion."""
    spec = _read_spec(args.spec)
    with _client(args) as client:
        spec = with_local_dataset(client, args, spec)
        job = client.lr_range_test(spec, min_lr=args.min_lr, max_lr=args.max_lr,
                                   steps=args.steps)
        if args.no_wait:
            _print_json(job) if args.json else view.console().print(
                f"started {job['id']}; its result: weightsmith lr-range-test-result "
                f"{job['id']}")
            return OK
        for _ in client.events(job["id"]):  # until the job has ended
            pass
        result = client.lr_range_test_result(job["id"])
    return _show_lr_range_test(result, args.json)


def cmd_lr_range_test_result(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _show_lr_range_test(client.lr_range_test_result(args.job), args.json)


def _show_lr_range_test(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        _print_json(result)
    else:
        out = view.console()
        out.print(view.lr_range_table(result))
        suggestion = result.get("suggestion")
        out.print(f"{result['job_id']} {result['status']} ({result['stop_reason']}): "
                  f"{len(result['series'])} of {result['steps']} batches; suggested "
                  f"learning rate: {view.fmt_value(suggestion['lr']) if suggestion else 'none'}",
                  highlight=False)
    return OK if result["status"] == "succeeded" else JOB_NOT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    with _client(args) as client:
        report = client.validate(with_local_dataset(client, args, spec))
    if args.json:
        _print_json(report)
        return OK
    view.console().print(view.dry_run_table(report))
    if report.get("dataset_id"):  # what a name (or the file uploaded) resolved to
        view.console().print(f"dataset {report['dataset_id']}: {report.get('n_samples')} rows")
    return OK


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _watch(client, args.job, args.json)


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = []
        for job in client.list_jobs(status=args.status, page_size=min(args.limit, 500)):
            jobs.append(job)
            if len(jobs) >= args.limit:
                break
    _print_json(jobs) if args.json else view.console().print(view.jobs_table(jobs))
    return OK


def cmd_metrics(args: argparse.Namespace) -> int:
    if args.csv is not None:
        with _client(args) as client:
            text = client.metrics_csv(args.job, None if args.csv == "-" else args.csv)
        if args.csv == "-":
            sys.stdout.write(text)
        return OK
    with _client(args) as client:
        items = client.metrics(args.job)
    _print_json(items) if args.json else view.console().print(view.metrics_table(items))
    return OK


def cmd_compare(args: argparse.Namespace) -> int:
    with _client(args) as client:
        comparison = client.compare(args.jobs)
    if args.json:
        _print_json(comparison)
    else:
        out = view.console()
        for table in view.comparison_tables(comparison):
            out.print(table)
    return OK


def cmd_checkpoints(args: argparse.Namespace) -> int:
    with _client(args) as client:
        items = client.checkpoints(args.job)
    _print_json(items) if args.json else view.console().print(view.checkpoints_table(items))
    return OK


def cmd_models_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        model = client.create_model(args.name, args.description)
    _print_json(model) if args.json else view.console().print(f"created model {model['name']}")
    return OK


def cmd_models_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.list_models()
    _print_json(models) if args.json else view.console().print(view.models_table(models))
    return OK


def cmd_models_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        model = client.get_model(args.name)
        versions = client.list_versions(args.name)
    if args.json:
        _print_json({**model, "versions": versions})
    else:
        view.console().print(view.versions_table(model, versions))
    return OK


def cmd_models_register(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.source.startswith("ckpt_"):
            version = client.register_version(args.name, checkpoint_id=args.source)
        else:
            version = client.register_version(args.name, job_id=args.source,
                                              checkpoint=args.checkpoint)
    if args.json:
        _print_json(version)
    else:
        view.console().print(f"{version['model']} v{version['version']} = "
                             f"{version['checkpoint_id']}")
    return OK


def cmd_models_alias(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.version is None:
            client.delete_alias(args.name, args.alias)
            model = client.get_model(args.name)
        else:
            model = client.set_alias(args.name, args.alias, args.version)
    _print_json(model) if args.json else view.console().print(
        f"{model['name']} aliases: {model['aliases']}")
    return OK


def cmd_models_predict(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.predict_model(args.name, read_inputs(args.input), alias=args.alias,
                                      version=args.version)
    _print_json(result) if args.json else view.console().print(view.predictions_table(result))
    return OK


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        data = client.download_weights(args.checkpoint, args.output)
    if args.json:
        _print_json({"checkpoint": args.checkpoint, "path": args.output, "size_bytes": len(data)})
    else:
        view.console().print(f"wrote {args.output} ({len(data)} bytes)")
    return OK


def cmd_export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        data = EXPORT_FORMATS[args.format](client, args.target, args.output, args.opset,
                                           args.version)
    if args.json:
        _print_json({"target": args.target, "version": args.version, "format": args.format,
                     "path": args.output, "size_bytes": len(data)})
    else:
        view.console().print(f"wrote {args.output} ({len(data)} bytes, {args.format})")
    return OK


# --format -> the client method that fetches that format (target, path, opset, version).
EXPORT_FORMATS: dict[str, Callable[[WeightsmithClient, str, str, int | None, int | None],
                                   bytes]] = {
    "onnx": WeightsmithClient.export_onnx,
}


def cmd_predict(args: argparse.Namespace) -> int:
    inputs = read_inputs(args.input)
    with _client(args) as client:
        result = client.predict(args.target, inputs, checkpoint=args.checkpoint)
    if args.json:
        _print_json(result)
    else:
        view.console().print(view.predictions_table(result))
        view.console().print(f"answered by checkpoint {result.get('checkpoint_id')}")
    return OK


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job)
    _print_json(job) if args.json else view.console().print(
        f"{job['id']}: cancel requested ({job['status']})")
    return OK


def cmd_resume(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.resume(args.job, epochs=args.epochs)
        if args.watch:
            return _watch(client, job["id"], args.json)
    _print_json(job) if args.json else view.console().print(f"{job['id']}: {job['status']}")
    return OK


def cmd_fork(args: argparse.Namespace) -> int:
    overrides = {}
    if args.overrides is not None:
        overrides = _read_json(args.overrides) if Path(args.overrides).is_file() \
            else json.loads(args.overrides)
    with _client(args) as client:
        job = client.fork(args.job, checkpoint_id=args.checkpoint, epoch=args.epoch,
                          overrides=overrides,
                          optimizer_state="reset" if args.reset else "keep")
        if args.watch:
            return _watch(client, job["id"], args.json)
    _print_json(job) if args.json else view.console().print(
        f"forked {job['id']} from {args.job} at epoch {job['parent']['epoch']}")
    return OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.reproduce(args.job)
        if args.watch:
            code = _watch(client, job["id"], args.json)
            verdict = client.get_job(job["id"])["reproduction"]
            _print_json(verdict) if args.json else view.console().print(
                f"identical: {verdict['identical']}; first divergent epoch: "
                f"{verdict['first_divergent_epoch']}")
            return code
    _print_json(job) if args.json else view.console().print(f"{job['id']}: {job['status']}")
    return OK


def cmd_manifest(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.manifest(args.job))
    return OK


def cmd_delete_job(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_job(args.job)
    _print_json({"deleted": args.job}) if args.json else view.console().print(
        f"deleted {args.job} with its checkpoints, metrics and events")
    return OK


def cmd_delete_checkpoint(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_checkpoint(args.checkpoint)
    _print_json({"deleted": args.checkpoint}) if args.json else view.console().print(
        f"deleted {args.checkpoint}")
    return OK


def cmd_datasets_upload(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    with _client(args) as client:
        dataset = upload_file(client, args.file, name=args.name, target=args.target,
                              features_only=args.features_only)
    _print_json(dataset) if args.json else view.console().print(view.datasets_table([dataset]))
    return OK


def cmd_datasets_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_dataset(args.dataset)
    _print_json({"deleted": args.dataset}) if args.json else view.console().print(
        f"deleted {args.dataset}")
    return OK


def cmd_datasets_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        items = list(client.list_datasets())
        if not args.uploaded:
            items += client.list_datasets(builtin=True)
    _print_json(items) if args.json else view.console().print(view.datasets_table(items))
    return OK


def tried_url(exc: httpx.HTTPError, url: str | None) -> str:
    """The URL a failed request went to, else the server the client was pointed at."""
    try:
        return str(exc.request.url)
    except RuntimeError:  # an error raised before any request was made
        return server_url(url)


def guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the client's exceptions into the documented exit codes and readable messages."""

    def run(args: argparse.Namespace) -> int:
        err = view.console(stderr=True)
        try:
            return handler(args)
        except UsageError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            return USAGE
        except WeightsmithAPIError as exc:
            if args.json:
                print(json.dumps(exc.body or {"status": exc.status, "title": exc.title,
                                              "detail": exc.detail}), file=sys.stderr)
            err.print(f"[red]error {exc.status}:[/red] {exc.title}", highlight=False)
            if exc.detail:
                err.print(exc.detail, highlight=False, markup=False)
            for item in exc.errors:
                err.print(f"  {item.get('field')}: {item.get('message')}", highlight=False,
                          markup=False)
            return API_ERROR
        except httpx.HTTPError as exc:
            reason = escape(f"cannot reach {tried_url(exc, args.url)}: {exc} (the server is "
                            f"--url, else $WEIGHTSMITH_URL, else {DEFAULT_URL})")
            err.print(f"[red]error:[/red] {reason}", highlight=False)
            return API_ERROR

    return run


def common_parser() -> argparse.ArgumentParser:
    """The options every client command takes, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"API base URL (default $WEIGHTSMITH_URL, else "
                                      f"{DEFAULT_URL})")
    common.add_argument("--api-key", help="API key (default $WEIGHTSMITH_API_KEY)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the client sub-commands; each sets `handler` to a function(args) -> exit code."""
    common = common_parser()

    def add(name: str, handler: Callable[[argparse.Namespace], int], help: str,
            where: Any = commands) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = where.add_parser(name, parents=[common], help=help,
                                                           description=help)
        parser.set_defaults(handler=guarded(handler))
        return parser

    def add_spec_and_dataset(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("spec", help="the job spec: a JSON file, or - for stdin")
        parser.add_argument("--dataset", help=f"upload this {'/'.join(suffixes())} file and "
                            "train on it (a spec's dataset naming a file beside the spec is "
                            "uploaded too)")
        parser.add_argument("--target", help="CSV target column of the uploaded file "
                                             "(default: the last)")

    p = add("submit", cmd_submit, "submit a job spec (JSON file, or - for stdin)")
    add_spec_and_dataset(p)
    p.add_argument("--idempotency-key", help="submitting again with it returns the same job")
    p.add_argument("--watch", action="store_true", help="follow the job with a progress bar")
    p = add("lr-range-test", cmd_lr_range_test,
            "find a learning rate: raise it batch by batch and watch the loss "
            "(docs/lr-range-test.md)")
    add_spec_and_dataset(p)
    p.add_argument("--min-lr", type=float, help="the first batch's rate (default 1e-7)")
    p.add_argument("--max-lr", type=float, help="the last batch's rate (default 10)")
    p.add_argument("--steps", type=int, help="batches from min to max (default 100)")
    p.add_argument("--no-wait", action="store_true", help="print the job and return")
    add("lr-range-test-result", cmd_lr_range_test_result,
        "a range test's series and suggested rate").add_argument("job")
    add_spec_and_dataset(add(
        "validate", cmd_validate,
        "dry-run a job spec with every check submit runs: shapes, parameters, FLOPs"))
    add("watch", cmd_watch, "follow a job live until it ends").add_argument("job")
    p = add("jobs", cmd_jobs, "list your jobs, newest first")
    p.add_argument("--status", choices=sorted(view.STATUS_STYLE))
    p.add_argument("--limit", type=int, default=20)
    p = add("metrics", cmd_metrics, "a job's per-epoch metrics")
    p.add_argument("job")
    p.add_argument("--csv", metavar="FILE", help="write them as CSV to FILE (- for stdout)")
    p = add("compare", cmd_compare, "compare jobs: the spec values that differ, best and last "
                                    "metrics")
    p.add_argument("jobs", nargs="+", metavar="JOB", help="2 to 20 job ids")
    add("checkpoints", cmd_checkpoints, "a job's kept checkpoints").add_argument("job")
    p = add("download", cmd_download, "download a checkpoint's weights.npz")
    p.add_argument("checkpoint")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p = add("export", cmd_export, "download a checkpoint, or a registered model's version, "
                                  "as a model file for other runtimes")
    p.add_argument("target", metavar="CKPT|MODEL")
    p.add_argument("--version", type=int, help="a version of the model named MODEL")
    p.add_argument("--format", choices=sorted(EXPORT_FORMATS), default="onnx",
                   help="model format (default onnx)")
    p.add_argument("--opset", type=int, help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} "
                                             f"(default {DEFAULT_OPSET})")
    p.add_argument("-o", "--output", required=True, help="file to write")
    p = add("predict", cmd_predict, "predict rows of INPUT (.json, .csv or .npy)")
    p.add_argument("target", metavar="JOB|CKPT")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--checkpoint", default="best", help="for a job: best, latest or an id")
    add("cancel", cmd_cancel, "cancel a job (it stops at the next batch)").add_argument("job")
    p = add("resume", cmd_resume, "resume a cancelled or failed job")
    p.add_argument("job")
    p.add_argument("--epochs", type=int, help="train this many more epochs")
    p.add_argument("--watch", action="store_true", help="follow the job with a progress bar")
    models = commands.add_parser("models", help="the model registry: versions and aliases")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    p = add("create", cmd_models_create, "create a named model", sub)
    p.add_argument("name")
    p.add_argument("--description")
    add("list", cmd_models_list, "list your models", sub)
    add("show", cmd_models_show, "a model's versions and aliases", sub).add_argument("name")
    p = add("register", cmd_models_register, "register a checkpoint as the next version", sub)
    p.add_argument("name")
    p.add_argument("source", metavar="JOB|CKPT", help="a job (its --checkpoint) or a checkpoint")
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best",
                   help="for a job: which of its checkpoints (default %(default)s)")
    p = add("alias", cmd_models_alias, "point ALIAS at VERSION (no VERSION: remove it)", sub)
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", type=int, nargs="?")
    p = add("predict", cmd_models_predict, "predict rows of INPUT with a model", sub)
    p.add_argument("name")
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--alias", help="the version this alias points at")
    p.add_argument("--version", type=int, help="this version (default: the newest)")
    p = add("fork", cmd_fork, "a new job from one of JOB's checkpoints (its latest by default)")
    p.add_argument("job")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--epoch", type=int, help="its checkpoint at this epoch")
    where.add_argument("--checkpoint", help="this checkpoint id")
    p.add_argument("--overrides", help="JSON (or a JSON file) merged into the parent's spec")
    p.add_argument("--reset", action="store_true",
                   help="weights only: a fresh optimizer from epoch 1 (default: keep its "
                        "optimizer state and go on as a resume would)")
    p.add_argument("--watch", action="store_true", help="follow the job with a progress bar")
    p = add("reproduce", cmd_reproduce, "run a succeeded job again; say if it is bit-identical")
    p.add_argument("job")
    p.add_argument("--watch", action="store_true", help="follow it, then print the verdict")
    add("manifest", cmd_manifest, "a job's manifest: what it depended on, by sha256").add_argument(
        "job")
    add("delete-job", cmd_delete_job, "delete a finished job with its checkpoints, metrics "
        "and events (frees storage)").add_argument("job")
    add("delete-checkpoint", cmd_delete_checkpoint, "delete a checkpoint, trained or "
        "imported (frees storage)").add_argument("checkpoint")
    datasets = commands.add_parser("datasets", help="upload and list data sets")
    sub = datasets.add_subparsers(dest="datasets_command", required=True, metavar="COMMAND")
    p = add("upload", cmd_datasets_upload, f"upload a data set ({', '.join(suffixes())})", sub)
    p.add_argument("file")
    p.add_argument("--name")
    p.add_argument("--target", help="CSV target column (default the last)")
    p.add_argument("--features-only", action="store_true",
                   help="the file has no target: rows to score with batch-predict (a job "
                        "cannot train on it)")
    p = add("list", cmd_datasets_list, "list your data sets, then the builtin ones", sub)
    p.add_argument("--uploaded", action="store_true", help="only the data sets you uploaded")
    add("delete", cmd_datasets_delete, "delete a data set", sub).add_argument("dataset")
    sweep = commands.add_parser("sweep", help="hyperparameter sweeps (docs/sweeps.md)")
    sub = sweep.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    sweep_commands.register(sub, add, _client, _read_json, _print_json)
