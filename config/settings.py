"""Settings read from the environment in one place.

Both the worker and the service need the same database, broker and limits, and neither may
import the other (docs/architecture.md), so the settings live in this small stdlib-only
package. Nothing here reads the environment at import time: call ``Settings.from_env()``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from config.webhooks import WebhookSettings

MiB = 1024 * 1024
MAX_NICENESS = 19  # the lowest CPU priority (the highest niceness) on Linux
Number = TypeVar("Number", int, float)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingError(ValueError):
    """A WEIGHTSMITH_* variable that cannot be used; the message names it and says why."""


def _positive(env: Mapping[str, str], name: str, default: Number, parse: type[Number],
              kind: str) -> Number:
    """`env[name]` parsed as a positive, finite `parse` (int or float), or `default` if unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingError(f"{name}: must be {kind}, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise SettingError(f"{name}: must be positive, got {raw}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """`env[name]` as comma-separated addresses or CIDR networks (empty when unset)."""
    networks = []
    for part in (env.get(name) or "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise SettingError(f"{name}: {part.strip()!r} is not an IP address or CIDR "
                                 "network (e.g. 10.0.0.0/8, 127.0.0.1, ::1)") from None
    return tuple(networks)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _positive(env, name, default, int, "an integer")


def _niceness(env: Mapping[str, str], name: str, default: int) -> int:
    """`env[name]` as a Unix niceness a process may give itself: 0 (unchanged) to 19."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit() or int(raw) > MAX_NICENESS:
        raise SettingError(f"{name}: must be an integer from 0 to {MAX_NICENESS}, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """`env[name]` as on (1, true, yes, on) or off (0, false, no, off), any case."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}: must be one of 1, true, yes, on, 0, false, no, off; got "
                     f"{env[name]!r}")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _positive(env, name, default, float, "a number")


# Measured on a 4 ms-epoch MLP, runner against the bare core in one run: 0.950x with commits
# every 1 s, 1.019x every 2 s (benchmarks/service/README.md, session 4). Two seconds keeps
# progress live enough to watch; epochs longer than it still commit one by one.
DEFAULT_COMMIT_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Limits:
    """Every limit a request is checked against before anything is stored (README's
    configuration table)."""

    # One request body, and one dataset file however it arrives (whole, or in pieces through
    # /v1/uploads): 2 GiB holds MNIST-sized image sets as float32 (issue 18; it was 64 MiB).
    max_upload_bytes: int = 2048 * MiB
    # An upload arriving in pieces is deleted this long after it was started, finished or not.
    upload_expiry_s: int = 24 * 3600
    max_dataset_rows: int = 1_000_000
    max_dataset_features: int = 100_000
    max_model_params: int = 50_000_000
    max_epochs: int = 10_000
    max_runtime_s: int = 6 * 3600
    max_concurrent_jobs: int = 8
    max_predict_rows: int = 10_000
    max_stored_bytes: int = 4096 * MiB
    max_sweep_trials: int = 1000  # per sweep (docs/sweeps.md)
    max_sweep_concurrent: int = 8  # a sweep's trials at once; the job quota applies as well
    max_lr_range_steps: int = 1000  # batches of a learning-rate range test (docs/lr-range-test.md)
    rate_limit: str = "50 per second"
    # Requests that fail authentication, per client address (each costs a key lookup).
    auth_failure_limit: str = "20 per minute"
    # A connection's first request line and headers must arrive within this, counted from
    # the connection's opening (service/http_worker.py answers 408 and closes it after).
    header_timeout_s: int = 10
    # A request body must arrive whole within this (the ASGI front answers 408 after it).
    body_timeout_s: int = 60
    # A job spec (or an imported checkpoint's __spec__) is refused past these before it is
    # parsed: validating a 34 MB spec of 10^6 layers took 11 s of CPU.
    max_spec_bytes: int = 256 * 1024
    # JSON nesting of request bodies and of specs: predict's inputs nest 4 deep at most.
    max_json_depth: int = 64
    # Budgets checked against the dry run's estimates before a job is stored (core/budget.py).
    max_layers: int = 1000
    max_training_memory_bytes: int = 2048 * MiB
    max_flops_per_epoch: int = 10**13
    max_predict_memory_bytes: int = 256 * MiB

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Limits:
        d = cls()
        return cls(
            max_upload_bytes=_int(env, "WEIGHTSMITH_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            upload_expiry_s=_int(env, "WEIGHTSMITH_UPLOAD_EXPIRY_S", d.upload_expiry_s),
            max_dataset_rows=_int(env, "WEIGHTSMITH_MAX_DATASET_ROWS", d.max_dataset_rows),
            max_dataset_features=_int(
                env, "WEIGHTSMITH_MAX_DATASET_FEATURES", d.max_dataset_features
            ),
            max_model_params=_int(env, "WEIGHTSMITH_MAX_MODEL_PARAMS", d.max_model_params),
            max_epochs=_int(env, "WEIGHTSMITH_MAX_EPOCHS", d.max_epochs),
            max_runtime_s=_int(env, "WEIGHTSMITH_MAX_RUNTIME_S", d.max_runtime_s),
            max_concurrent_jobs=_int(
                env, "WEIGHTSMITH_MAX_CONCURRENT_JOBS", d.max_concurrent_jobs
            ),
            max_predict_rows=_int(env, "WEIGHTSMITH_MAX_PREDICT_ROWS", d.max_predict_rows),
            max_stored_bytes=_int(env, "WEIGHTSMITH_MAX_STORED_BYTES", d.max_stored_bytes),
            max_sweep_trials=_int(env, "WEIGHTSMITH_MAX_SWEEP_TRIALS", d.max_sweep_trials),
            max_sweep_concurrent=_int(
                env, "WEIGHTSMITH_MAX_SWEEP_CONCURRENT", d.max_sweep_concurrent
            ),
            max_lr_range_steps=_int(
                env, "WEIGHTSMITH_MAX_LR_RANGE_STEPS", d.max_lr_range_steps
            ),
            rate_limit=env.get("WEIGHTSMITH_RATE_LIMIT") or d.rate_limit,
            auth_failure_limit=env.get("WEIGHTSMITH_AUTH_FAILURE_LIMIT") or d.auth_failure_limit,
            header_timeout_s=_int(env, "WEIGHTSMITH_HEADER_TIMEOUT_S", d.header_timeout_s),
            body_timeout_s=_int(env, "WEIGHTSMITH_BODY_TIMEOUT_S", d.body_timeout_s),
            max_spec_bytes=_int(env, "WEIGHTSMITH_MAX_SPEC_BYTES", d.max_spec_bytes),
            max_json_depth=_int(env, "WEIGHTSMITH_MAX_JSON_DEPTH", d.max_json_depth),
            max_layers=_int(env, "WEIGHTSMITH_MAX_LAYERS", d.max_layers),
            max_training_memory_bytes=_int(
                env, "WEIGHTSMITH_MAX_TRAINING_MEMORY_BYTES", d.max_training_memory_bytes
            ),
            max_flops_per_epoch=_int(env, "WEIGHTSMITH_MAX_FLOPS_PER_EPOCH",
                                     d.max_flops_per_epoch),
            max_predict_memory_bytes=_int(
                env, "WEIGHTSMITH_MAX_PREDICT_MEMORY_BYTES", d.max_predict_memory_bytes
            ),
        )


@dataclass(frozen=True)
class Settings:
    """Where the data lives, which backends to use, how the job lease behaves, and how far
    past ``limits.max_runtime_s`` Celery's soft and hard time limits fire."""

    data_dir: Path = Path(".weightsmith")
    database_url: str = ""
    broker_url: str = ""
    lease_timeout_s: int = 60
    heartbeat_interval_s: int = 5
    # Epochs shorter than this are committed together, at most once per interval: how often
    # progress, metrics and checkpoints reach the database (and what a crash can lose). Each
    # commit costs the training step of a tiny model a few percent of a second; see
    # worker/epoch_buffer.py.
    commit_interval_s: float = DEFAULT_COMMIT_INTERVAL_S
    max_attempts: int = 3
    # The API's threads per process (gunicorn's --threads, which `weightsmith api` passes on
    # here): its database pool keeps one connection per thread, so that none is closed on
    # return and reopened by the next request (a new PostgreSQL backend each time).
    api_threads: int = 8
    # Connections one API process holds open (gunicorn's --worker-connections): idle, slow or
    # streaming connections wait on the event loop, so this bounds memory, not threads.
    api_connections: int = 1000
    # gunicorn's access log, one line per request on stdout. Off by default: written on the
    # event loop that reads every request, it was a fifth of that loop's CPU per predict
    # (py-spy), and the API's own /metrics count requests by route and status anyway.
    access_log: bool = False
    # Peers whose X-Forwarded-For is believed (the reverse proxies in front of the API): the
    # client address of a request (service/client_address.py) is the peer's own unless the
    # peer is in one of these networks. Empty: X-Forwarded-For is ignored.
    trusted_proxies: tuple[Network, ...] = ()
    reconcile_interval_s: int = 30
    queued_grace_s: int = 60
    # BLAS threads per worker process; None: os.cpu_count() // worker concurrency (at least 1).
    blas_threads: int | None = None
    # The niceness a Celery worker gives itself (and its pool) at start: 0 leaves it as
    # started. `weightsmith serve` sets it for its own worker (SERVE_WORKER_NICENESS), which
    # shares the machine's cores with the API.
    worker_niceness: int = 0
    # Celery's time limits are limits.max_runtime_s plus these: the soft one fires first so the
    # task can record the failure, the hard one (SIGKILL of the pool process) is the backstop.
    soft_limit_margin_s: int = 60
    hard_limit_margin_s: int = 120
    # An epoch whose training loss is more than this many times the first epoch's ends the job
    # diverged (stop_reason "diverged"), as a NaN or inf loss does: a service-wide guard, not
    # a spec field, because it protects the service's compute from runs that cannot recover.
    divergence_factor: float = 1e4
    # Loaded networks the API keeps for predict, by the bytes of their arrays (not by count:
    # one imported 50M-parameter model weighs 200 MB, another a few KB).
    model_cache_bytes: int = 256 * MiB
    # The worker runs a job under an address-space limit of what the process maps when the job
    # starts, plus JOB_MEMORY_FACTOR x the job's estimate, plus this (threads' stacks and
    # malloc arenas, BLAS buffers, the commit's serialised checkpoints): worker/memory_limit.py.
    job_memory_headroom_bytes: int = 1024 * MiB
    limits: Limits = field(default_factory=Limits)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    def __post_init__(self) -> None:
        if self.hard_limit_margin_s <= self.soft_limit_margin_s:
            raise SettingError(
                f"WEIGHTSMITH_HARD_LIMIT_MARGIN_S ({self.hard_limit_margin_s}) must be larger "
                f"than WEIGHTSMITH_SOFT_LIMIT_MARGIN_S ({self.soft_limit_margin_s})")
        data_dir = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'weightsmith.db'}")
        if not self.broker_url:
            object.__setattr__(self, "broker_url", "filesystem://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()  # the defaults, to fall back on
        return cls(
            data_dir=Path(env.get("WEIGHTSMITH_DATA_DIR") or ".weightsmith"),
            database_url=env.get("WEIGHTSMITH_DATABASE_URL", ""),
            broker_url=env.get("WEIGHTSMITH_BROKER_URL", ""),
            lease_timeout_s=_int(env, "WEIGHTSMITH_LEASE_TIMEOUT_S", d.lease_timeout_s),
            heartbeat_interval_s=_int(
                env, "WEIGHTSMITH_HEARTBEAT_INTERVAL_S", d.heartbeat_interval_s
            ),
            commit_interval_s=_float(
                env, "WEIGHTSMITH_COMMIT_INTERVAL_S", d.commit_interval_s
            ),
            max_attempts=_int(env, "WEIGHTSMITH_MAX_ATTEMPTS", d.max_attempts),
            api_threads=_int(env, "WEIGHTSMITH_API_THREADS", d.api_threads),
            api_connections=_int(env, "WEIGHTSMITH_API_CONNECTIONS", d.api_connections),
            access_log=_flag(env, "WEIGHTSMITH_ACCESS_LOG", d.access_log),
            trusted_proxies=_networks(env, "WEIGHTSMITH_TRUSTED_PROXIES"),
            reconcile_interval_s=_int(
                env, "WEIGHTSMITH_RECONCILE_INTERVAL_S", d.reconcile_interval_s
            ),
            queued_grace_s=_int(env, "WEIGHTSMITH_QUEUED_GRACE_S", d.queued_grace_s),
            blas_threads=_int(env, "WEIGHTSMITH_BLAS_THREADS", 0) or None,  # unset: 0 -> None
            worker_niceness=_niceness(env, "WEIGHTSMITH_WORKER_NICENESS", d.worker_niceness),
            soft_limit_margin_s=_int(
                env, "WEIGHTSMITH_SOFT_LIMIT_MARGIN_S", d.soft_limit_margin_s
            ),
            hard_limit_margin_s=_int(
                env, "WEIGHTSMITH_HARD_LIMIT_MARGIN_S", d.hard_limit_margin_s
            ),
            divergence_factor=_float(
                env, "WEIGHTSMITH_DIVERGENCE_FACTOR", d.divergence_factor
            ),
            model_cache_bytes=_int(env, "WEIGHTSMITH_MODEL_CACHE_BYTES", d.model_cache_bytes),
            job_memory_headroom_bytes=_int(
                env, "WEIGHTSMITH_JOB_MEMORY_HEADROOM_BYTES", d.job_memory_headroom_bytes
            ),
            limits=Limits.from_env(env),
            webhooks=_webhooks(env),
        )

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def webhooks_allow_private(self) -> bool:
        """May a webhook reach loopback, private or link-local addresses? (see WebhookSettings)"""
        allowed = self.webhooks.allow_private
        return self.is_embedded_broker if allowed is None else allowed

    @property
    def broker_dir(self) -> Path:
        """Folder of the kombu filesystem transport (embedded mode only)."""
        return self.data_dir / "broker"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _webhooks(env: Mapping[str, str]) -> WebhookSettings:
    d = WebhookSettings()
    raw = env.get("WEIGHTSMITH_WEBHOOKS_ALLOW_PRIVATE")
    if raw not in (None, "", "0", "1"):
        raise SettingError(f"WEIGHTSMITH_WEBHOOKS_ALLOW_PRIVATE: must be 0 or 1, got {raw!r}")
    return WebhookSettings(
        allow_private=None if raw in (None, "") else raw == "1",
        retry_base_s=_float(env, "WEIGHTSMITH_WEBHOOK_RETRY_BASE_S", d.retry_base_s),
        max_attempts=_int(env, "WEIGHTSMITH_WEBHOOK_MAX_ATTEMPTS", d.max_attempts),
        timeout_s=_float(env, "WEIGHTSMITH_WEBHOOK_TIMEOUT_S", d.timeout_s),
    )
