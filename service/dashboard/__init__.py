"""The browser dashboard: jobs at `/` and `/jobs/<id>`, runs side by side at `/compare`,
sweeps at `/sweeps` and `/sweeps/<id>`, models at `/models` and `/models/<name>`, webhook
deliveries at `/webhooks`.

The pages are static shells; the browser fetches everything from the public `/v1` API with the
key the user typed once (kept in localStorage, or passed as `#key=...`), so the dashboard needs
no session, no cookie and no server-side rendering of tenant data. Scripts and styles are ours,
served from `service/static/dashboard` (no CDN, no build step).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, render_template

from store.statuses import TERMINAL_STATUSES

HERE = Path(__file__).resolve().parent

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder=str(HERE.parent / "templates"),
    static_folder=str(HERE.parent / "static"),
    static_url_path="/ui/static",
)


@bp.get("/")
def index() -> str:
    """The job list (refreshes itself)."""
    return render_template("dashboard/index.html")


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    """One job: live curves, checkpoints, weight heatmaps and histograms."""
    return render_template("dashboard/job.html", job_id=job_id,
                           terminal_statuses=TERMINAL_STATUSES)


@bp.get("/compare")
def compare() -> str:
    """Jobs side by side (`?ids=a,b,c`): overlaid curves, the spec paths that differ."""
    return render_template("dashboard/compare.html")


@bp.get("/sweeps")
def sweeps() -> str:
    """The sweeps, newest first, with their trial counts and best so far."""
    return render_template("dashboard/sweeps.html")


@bp.get("/sweeps/<sweep_id>")
def sweep(sweep_id: str) -> str:
    """One sweep: status counts, best so far, the trials table, the metric against each
    parameter, and each trial's epochs with the rungs it passed or was pruned at."""
    return render_template("dashboard/sweep.html", sweep_id=sweep_id,
                           terminal_statuses=TERMINAL_STATUSES)


@bp.get("/models")
def models() -> str:
    """The registered models with their aliases."""
    return render_template("dashboard/models.html")


@bp.get("/models/<name>")
def model(name: str) -> str:
    """One model: versions with their metrics, aliases and their history, downloads."""
    return render_template("dashboard/model.html", model_name=name)


@bp.get("/webhooks")
def webhooks() -> str:
    """The tenant's webhooks and every delivery attempt, newest first."""
    return render_template("dashboard/webhooks.html")
