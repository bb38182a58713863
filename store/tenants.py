"""Tenants: the owners of keys, datasets, jobs and checkpoints."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import keys
from store.models import Tenant


def get(s: Session, tenant_id: str) -> Tenant | None:
    return s.get(Tenant, tenant_id)


def get_by_name(s: Session, name: str) -> Tenant | None:
    return s.scalars(sa.select(Tenant).where(Tenant.name == name)).one_or_none()


def get_or_create(s: Session, name: str) -> Tenant:
    """The tenant called `name`, created (and flushed, so it has an id) when missing."""
    tenant = get_by_name(s, name)
    if tenant is None:
        tenant = Tenant(name=name)
        s.add(tenant)
        s.flush()
    return tenant


def create_api_key(s: Session, tenant_id: str) -> str:
    """A new key for the tenant; only the plain text, shown once (see keys.create_key)."""
    plaintext, _row = keys.create_key(s, tenant_id)
    return plaintext
