"""How the client commands look on a terminal: rich tables and the live training progress bar.

Kept apart from `client_commands` (argument parsing and HTTP) so either reads in one screen.
Times shown are the server's: elapsed counts from the job's `started_at` (to `finished_at`
once it ended), and the time left is the mean epoch duration so far (the `seconds` metric)
times the epochs still to run, which stays right when a watch starts in the middle of a job
or replays its past events.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from service.client import Event
from store.statuses import STATUS_EVENT

# A colour for each of store.statuses.JOB_STATUSES (tests/service/test_statuses.py).
STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green",
                "failed": "red", "cancelled": "magenta"}
LEARNING = ("loss", "accuracy", "val_loss", "val_accuracy")
METRIC_ORDER = (*LEARNING, "lr", "seconds")


def console(stderr: bool = False) -> Console:
    out = Console(stderr=stderr)
    if not out.is_terminal:
        out = Console(stderr=stderr, width=200)  # pipes and tests: never wrap ids
    return out


@contextlib.contextmanager
def upload_progress(label: str, size: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for an upload of `size` bytes (the client's `progress`
    callback), or None for a file sent in one request: it is over before a bar would show."""
    from service.client import PIECES_FROM

    if size <= PIECES_FROM:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  DownloadColumn(binary_units=True), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console(stderr=True), transient=True
                  ) as bar:
        task = bar.add_task(label, total=size)

        def update(sent: int, total: int) -> None:
            bar.update(task, completed=sent, total=total)

        yield update


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def fmt_bytes(count: Any) -> str:
    """1536 -> "1.5 KiB"; None (an older server's report) -> ""."""
    if not isinstance(count, int):
        return ""
    size, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-:--:--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def ending(job: dict[str, Any]) -> str:
    """Why the job stopped, and what went wrong, side by side: a diverged job has both, and
    the failure (e.g. which epoch and batch blew up) is the part a user acts on."""
    return "; ".join(str(job[k]) for k in ("stop_reason", "failure_reason") if job.get(k))


def is_complete(job: dict[str, Any]) -> bool:
    """A job that succeeded ran all the epochs it was going to: early stopping and the
    runtime budget end a run successfully before its `epochs`, and it reads as complete."""
    return job.get("status") == "succeeded"


def jobs_table(jobs: Iterable[dict[str, Any]]) -> Table:
    table = Table("id", "name", "status", "epoch", "loss", "val_loss", "val_accuracy",
                  "stop_reason", "failure_reason", "created_at")
    for job in jobs:
        latest = job.get("latest") or {}
        progress = job.get("progress") or {}
        table.add_row(job["id"], job.get("name") or "", status_text(job["status"]),
                      f"{progress.get('epoch', 0)}/{progress.get('epochs', '?')}",
                      fmt_value(latest.get("loss")), fmt_value(latest.get("val_loss")),
                      fmt_value(latest.get("val_accuracy")), job.get("stop_reason") or "",
                      job.get("failure_reason") or "", job.get("created_at") or "")
    return table


def metrics_table(items: list[dict[str, Any]]) -> Table:
    names = [m for m in METRIC_ORDER if any(m in item for item in items)]
    names += sorted({k for item in items for k in item} - set(names) - {"epoch"})
    table = Table("epoch", *names)
    for item in items:
        table.add_row(str(item["epoch"]), *(fmt_value(item.get(n)) for n in names))
    return table


def comparison_tables(comparison: dict[str, Any]) -> list[Table]:
    """Two tables: the spec paths that differ, then each metric's best (epoch) and last."""
    ids = [job["id"] for job in comparison["jobs"]]
    names = {job["id"]: job["name"] for job in comparison["jobs"]}
    header = [f"{names[i]}\n{i}" for i in ids]
    specs = Table("spec path", *header, title="what differs")
    for diff in comparison["spec_differences"]:
        specs.add_row(diff["path"], *(fmt_value(diff["values"].get(i)) for i in ids))
    metrics = Table("metric", *header, title="best (epoch) / last")
    order = [m for m in METRIC_ORDER if m in comparison["metrics"]]
    order += sorted(set(comparison["metrics"]) - set(order))
    for name in order:
        cells = []
        for i in ids:
            m = comparison["metrics"][name].get(i)
            if m is None:
                cells.append("")
            elif m["best"] is None:
                cells.append(f"last {fmt_value(m['last'])}")
            else:
                cells.append(f"{fmt_value(m['best'])} ({m['best_epoch']}) / "
                             f"{fmt_value(m['last'])}")
        metrics.add_row(name, *cells)
    return [specs, metrics]


def models_table(models: Iterable[dict[str, Any]]) -> Table:
    table = Table("name", "latest version", "aliases", "description", "created_at")
    for m in models:
        aliases = ", ".join(f"{a}=v{v}" for a, v in m["aliases"].items())
        table.add_row(m["name"], str(m["latest_version"] or ""), aliases,
                      m.get("description") or "", m["created_at"] or "")
    return table


def versions_table(model: dict[str, Any], versions: list[dict[str, Any]]) -> Table:
    table = Table("version", "aliases", "checkpoint", "job", "metrics", "created_at",
                  title=model["name"])
    for v in versions:
        values = v.get("metrics") or {}
        metrics = ", ".join(f"{k}={fmt_value(values[k])}" for k in LEARNING if k in values)
        table.add_row(f"v{v['version']}", ", ".join(v["aliases"]), v["checkpoint_id"],
                      v.get("job_id") or "", metrics, v["created_at"] or "")
    return table


def checkpoints_table(items: list[dict[str, Any]]) -> Table:
    table = Table("id", "epoch", "kind", "metrics", "size_bytes", "sha256")
    for c in items:
        values = c.get("metrics") or {}
        # The learning metrics only: lr and seconds are in `metrics JOB`.
        metrics = ", ".join(f"{k}={fmt_value(values[k])}" for k in LEARNING if k in values)
        table.add_row(c["id"], str(c["epoch"]), c["kind"], metrics, str(c["size_bytes"]),
                      (c.get("sha256") or "")[:16])
    return table


def datasets_table(items: Iterable[dict[str, Any]]) -> Table:
    table = Table("id", "name", "kind", "rows", "x_shape", "classes", "created_at")
    for d in items:
        classes = d.get("classes")
        table.add_row(d["id"], d.get("name") or "", d.get("kind") or "",
                      fmt_value(d.get("n_rows")), fmt_value(d.get("x_shape")),
                      "" if classes is None else str(len(classes)), d.get("created_at") or "")
    return table


def lr_range_table(result: dict[str, Any], rows: int = 12) -> Table:
    """A range test's series, about `rows` points evenly spread, the suggestion among them
    (marked) and the last point (where it stopped)."""
    series = result.get("series") or []
    suggestion = result.get("suggestion") or {}
    chosen = suggestion.get("index")
    step = max(1, len(series) // rows)
    picked = sorted({*range(0, len(series), step), *([chosen] if chosen is not None else []),
                     *([len(series) - 1] if series else [])})
    table = Table("#", "lr", "loss", "smoothed loss", "")
    for i in picked:
        point = series[i]
        table.add_row(str(i), fmt_value(point["lr"]), fmt_value(point["loss"]),
                      fmt_value(point["smoothed_loss"]), "<- suggested" if i == chosen else "")
    return table


def dry_run_table(report: dict[str, Any]) -> Table:
    table = Table("layer", "type", "output_shape", "params", "flops", "memory")
    for layer in report.get("layers", []):
        table.add_row(str(layer.get("index")), str(layer.get("type")),
                      fmt_value(layer.get("output_shape")), fmt_value(layer.get("params")),
                      fmt_value(layer.get("flops")), fmt_bytes(layer.get("memory_bytes")))
    table.add_section()
    table.add_row("total", "", "", fmt_value(report.get("total_params")),
                  f"{report.get('flops_per_epoch')} per epoch",
                  fmt_bytes(report.get("memory_bytes")))
    return table


def predictions_table(result: dict[str, Any]) -> Table:
    outputs = result.get("outputs") or []
    classes = result.get("classes")
    table = Table("row", "class" if classes is not None else "output",
                  *(["confidence"] if classes is not None else []))
    for i, out in enumerate(outputs):
        if classes is not None:
            conf = max(out) if isinstance(out, list) and out else out
            table.add_row(str(i), str(classes[i]), fmt_value(conf))
        else:
            table.add_row(str(i), fmt_value(out))
    return table


class ClockColumn(ProgressColumn):
    """Elapsed since the job started (to its end once it ended), and the time left from the
    mean epoch duration."""

    def render(self, task: Task) -> Text:
        started, finished = task.fields.get("started"), task.fields.get("finished")
        elapsed = None if started is None else (finished or time.time()) - started
        done, total = task.completed, task.total or 0
        per_epoch = task.fields.get("per_epoch")
        left = None if per_epoch is None else per_epoch * max(total - done, 0)
        if task.finished:
            left = 0.0
        return Text(f"{fmt_duration(elapsed)} elapsed {fmt_duration(left)} left", style="dim",
                    no_wrap=True)


def metrics_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {name: fmt_value(values.get(name)) or "-"
            for name in ("loss", "val_loss", "val_accuracy")}


def clock_fields(job: dict[str, Any]) -> dict[str, Any]:
    """The server's start and end of the job, for ClockColumn (None until they happen)."""
    return {"started": parse_time(job.get("started_at")),
            "finished": parse_time(job.get("finished_at"))}


def watch_progress(job: dict[str, Any], events: Iterator[Event], out: Console,
                   reread: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Show a live bar fed by `events`; returns the final status event's data (or {}).

    `reread` fetches the job again at each status event, for its `started_at` and
    `finished_at`: elapsed time counts on the server's clock, from when the job started.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=16),
        TaskProgressColumn(), TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        TextColumn("loss {task.fields[loss]} val_loss {task.fields[val_loss]} "
                   "val_acc {task.fields[val_accuracy]}"),
        ClockColumn(), console=out, refresh_per_second=4,
    )
    pg = job.get("progress") or {}
    seconds: list[float] = []
    final: dict[str, Any] = {}
    with progress:
        label = job.get("name") or job["id"]
        epochs = pg.get("epochs") or 1
        task = progress.add_task(f"{label} {job['status']}", total=epochs, completed=0,
                                 epoch=0, epochs=epochs, per_epoch=None,
                                 **clock_fields(job), **metrics_fields({}))
        for event in events:
            data = event.data if isinstance(event.data, dict) else {}
            if event.event == "epoch":
                if isinstance(data.get("seconds"), (int, float)):
                    seconds.append(float(data["seconds"]))
                epochs = data.get("epochs") or epochs
                progress.update(task, completed=data.get("epoch", 0), total=epochs,
                                epoch=data.get("epoch", 0), epochs=epochs,
                                per_epoch=sum(seconds) / len(seconds) if seconds else None,
                                **metrics_fields(data))
            elif event.event == STATUS_EVENT:
                status = str(data.get("status", ""))
                fields: dict[str, Any] = {"description": f"{label} {status}"}
                if reread is not None:
                    fields.update(clock_fields(reread()))
                if is_complete({"status": status}):
                    fields["completed"] = progress.tasks[0].total  # early stopping included
                progress.update(task, **fields)
                final = data
    return final
