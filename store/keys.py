"""API keys: only the sha256 of a key is stored; the plain key is shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.models import ApiKey

KEY_PREFIX = "ws_"


def hash_key(plaintext: str) -> str:
    """The sha256 hex digest stored for a key (keys are 256 random bits: no salt or KDF needed)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_key(s: Session, tenant_id: str) -> tuple[str, ApiKey]:
    """A new random key for the tenant: (plaintext, row). The plaintext is not stored."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant_id=tenant_id, key_hash=hash_key(plaintext), prefix=plaintext[:8])
    s.add(row)
    s.flush()
    return plaintext, row


def tenant_for_key(s: Session, plaintext: str) -> str | None:
    """The tenant id of an unrevoked key, or None.

    The lookup is by hash, so its timing says nothing about the secret; the fetched hash is
    still compared in constant time so a future lookup change cannot introduce a leak.
    """
    digest = hash_key(plaintext)
    row = s.execute(
        sa.select(ApiKey.key_hash, ApiKey.tenant_id).where(
            ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return str(row.tenant_id)


def list_for_tenant(s: Session, tenant_id: str) -> list[ApiKey]:
    return list(
        s.scalars(sa.select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id))
    )


def get(s: Session, tenant_id: str, key_id: str) -> ApiKey | None:
    """One of the tenant's keys (revoked or not), or None; the tenant is in the query."""
    return s.scalars(
        sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    ).one_or_none()


def revoke(s: Session, tenant_id: str, key_id: str) -> bool:
    """Revoke one of the tenant's keys; False if it is not theirs or already revoked."""
    result = s.execute(
        sa.update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
