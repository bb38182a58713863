"""The model registry: a tenant's named models, their numbered versions, and moving aliases.

A version is immutable: a checkpoint with what produced it (job, dataset digest, metrics)
recorded when it was registered. An alias (``champion``, ``staging``) points at one version at
a time; every move closes the alias's open span and opens another, so its history is its rows
and "which version served when" is a query, not a log to trust.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.errors import Conflict
from store.models import Checkpoint, ModelAlias, ModelVersion, RegisteredModel


def create_model(s: Session, tenant_id: str, name: str,
                 description: str | None = None) -> RegisteredModel:
    """A new model; Conflict when the tenant already has one of that name."""
    if get_model(s, tenant_id, name) is not None:
        raise Conflict(f"a model named {name!r} already exists")
    model = RegisteredModel(tenant_id=tenant_id, name=name, description=description)
    s.add(model)
    s.flush()
    return model


def get_model(s: Session, tenant_id: str, name: str) -> RegisteredModel | None:
    return s.scalar(sa.select(RegisteredModel).where(RegisteredModel.tenant_id == tenant_id,
                                                     RegisteredModel.name == name))


def list_models(s: Session, tenant_id: str) -> list[RegisteredModel]:
    return list(s.scalars(sa.select(RegisteredModel)
                          .where(RegisteredModel.tenant_id == tenant_id)
                          .order_by(RegisteredModel.name)))


def add_version(s: Session, model: RegisteredModel, checkpoint: Checkpoint, *,
                dataset_id: str | None, dataset_sha256: str | None) -> ModelVersion:
    """Register ``checkpoint`` as the model's next version (1, 2, ...).

    The model's row is locked first (PostgreSQL; SQLite's write transactions are serial
    already), so two concurrent registrations get consecutive numbers, not a clash.
    """
    s.execute(sa.select(RegisteredModel.id).where(RegisteredModel.id == model.id)
              .with_for_update())
    latest = s.scalar(sa.select(sa.func.max(ModelVersion.version))
                      .where(ModelVersion.model_id == model.id))
    version = ModelVersion(model_id=model.id, version=int(latest or 0) + 1,
                           checkpoint_id=checkpoint.id, checkpoint_sha256=checkpoint.sha256,
                           job_id=checkpoint.job_id, dataset_id=dataset_id,
                           dataset_sha256=dataset_sha256,
                           metrics=dict(checkpoint.metrics or {}))
    s.add(version)
    s.flush()
    return version


def versions(s: Session, model_id: str) -> list[ModelVersion]:
    return list(s.scalars(sa.select(ModelVersion).where(ModelVersion.model_id == model_id)
                          .order_by(ModelVersion.version)))


def get_version(s: Session, model_id: str, version: int) -> ModelVersion | None:
    return s.get(ModelVersion, (model_id, version))


def latest_version(s: Session, model_id: str) -> ModelVersion | None:
    return s.scalar(sa.select(ModelVersion).where(ModelVersion.model_id == model_id)
                    .order_by(ModelVersion.version.desc()).limit(1))


def aliases(s: Session, model_id: str) -> dict[str, int]:
    """The model's current aliases: ``{alias: version}``."""
    rows = s.execute(sa.select(ModelAlias.alias, ModelAlias.version)
                     .where(ModelAlias.model_id == model_id, ModelAlias.moved_at.is_(None))
                     .order_by(ModelAlias.alias))
    return {alias: int(version) for alias, version in rows}


def set_alias(s: Session, model_id: str, alias: str, version: int, *,
              now: datetime | None = None) -> int | None:
    """Point ``alias`` at ``version``; the version it pointed at before (None if unset)."""
    now = now or utcnow()
    previous = _close(s, model_id, alias, now)
    s.add(ModelAlias(model_id=model_id, alias=alias, version=version, set_at=now))
    s.flush()
    return previous


def delete_alias(s: Session, model_id: str, alias: str, *,
                 now: datetime | None = None) -> int | None:
    """Unset ``alias``; the version it pointed at (None: it was not set)."""
    return _close(s, model_id, alias, now or utcnow())


def _close(s: Session, model_id: str, alias: str, now: datetime) -> int | None:
    row = s.execute(sa.update(ModelAlias)
                    .where(ModelAlias.model_id == model_id, ModelAlias.alias == alias,
                           ModelAlias.moved_at.is_(None))
                    .values(moved_at=now).returning(ModelAlias.version)
                    .execution_options(synchronize_session=False)).first()
    return None if row is None else int(row.version)


def alias_history(s: Session, model_id: str, alias: str) -> list[dict[str, Any]]:
    """Every span of ``alias``, oldest first: ``{"version", "from", "to"}`` (to None: now)."""
    rows = s.execute(sa.select(ModelAlias.version, ModelAlias.set_at, ModelAlias.moved_at)
                     .where(ModelAlias.model_id == model_id, ModelAlias.alias == alias)
                     .order_by(ModelAlias.set_at, ModelAlias.id))
    return [{"version": int(v), "from": start, "to": end} for v, start, end in rows]


def _resolve_statement(by: str) -> sa.Select[str, int, str | None]:
    versions = sa.select(ModelVersion.checkpoint_id, ModelVersion.version, ModelVersion.job_id)
    query = (versions.join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
             .where(RegisteredModel.tenant_id == sa.bindparam("tenant"),
                    RegisteredModel.name == sa.bindparam("name")))
    if by == "alias":
        return query.join(ModelAlias, sa.and_(
            ModelAlias.model_id == ModelVersion.model_id,
            ModelAlias.version == ModelVersion.version,
            ModelAlias.alias == sa.bindparam("alias"), ModelAlias.moved_at.is_(None)))
    if by == "version":
        return query.where(ModelVersion.version == sa.bindparam("version"))
    return query.order_by(ModelVersion.version.desc()).limit(1)


# Built once: predict resolves one on every request, and building a statement costs more
# Python than running it.
RESOLVE = {by: _resolve_statement(by) for by in ("alias", "version", "newest")}


def resolve(conn: sa.Connection, tenant_id: str, name: str, *, alias: str | None = None,
            version: int | None = None) -> sa.Row[str, int, str | None] | None:
    """The version a predict request means, ``(checkpoint_id, version, job_id)``: by alias, by
    number, or the newest, in one prebuilt statement on a bare connection (predict's hot path:
    no ORM session, no objects).

    The API calls it when its per-process cache cannot vouch for an answer
    (service/registry_cache.py: a Redis generation token per model, moved around every
    alias move and new version), so a moved alias serves its new version from the next
    request in every API process.
    """
    by = "alias" if alias is not None else "version" if version is not None else "newest"
    params = {"tenant": tenant_id, "name": name, "alias": alias, "version": version}
    return conn.execute(RESOLVE[by], {k: v for k, v in params.items()
                                      if k in ("tenant", "name") or k == by}).first()


def held_checkpoints(s: Session, checkpoint_ids: list[str]) -> set[str]:
    """Those of ``checkpoint_ids`` that a model version serves (never pruned or deleted)."""
    if not checkpoint_ids:
        return set()
    return set(s.scalars(sa.select(ModelVersion.checkpoint_id)
                         .where(ModelVersion.checkpoint_id.in_(checkpoint_ids))))


def versions_holding(s: Session, *, job_id: str | None = None,
                     dataset_id: str | None = None) -> list[str]:
    """``"name v3"`` for each version made from this job or this dataset (what a delete
    must not pull out from under a model)."""
    query = (sa.select(RegisteredModel.name, ModelVersion.version)
             .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id))
    if job_id is not None:
        query = query.where(ModelVersion.job_id == job_id)
    if dataset_id is not None:
        query = query.where(ModelVersion.dataset_id == dataset_id)
    return [f"{name} v{version}" for name, version in
            s.execute(query.order_by(RegisteredModel.name, ModelVersion.version))]
