from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from store import keys, tenants
from store.models import ApiKey


def test_get_or_create_returns_the_same_tenant_by_name(s: Session) -> None:
    first = tenants.get_or_create(s, "acme")
    again = tenants.get_or_create(s, "acme")
    other = tenants.get_or_create(s, "globex")
    assert first.id == again.id
    assert other.id != first.id
    assert first.id.startswith("ten_")
    assert tenants.get_by_name(s, "globex") is other


def test_only_the_sha256_of_a_key_is_stored(s: Session) -> None:
    tenant = tenants.get_or_create(s, "acme")
    plaintext, row = keys.create_key(s, tenant.id)
    assert plaintext.startswith("ws_") and len(plaintext) >= 40
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.prefix == plaintext[:8]
    stored = [value for r in s.query(ApiKey).all() for value in vars(r).values()]
    assert plaintext not in stored


def test_tenant_for_key_finds_the_owner_and_nothing_else(s: Session) -> None:
    acme = tenants.get_or_create(s, "acme")
    globex = tenants.get_or_create(s, "globex")
    key_a = tenants.create_api_key(s, acme.id)
    key_g, _ = keys.create_key(s, globex.id)
    assert keys.tenant_for_key(s, key_a) == acme.id
    assert keys.tenant_for_key(s, key_g) == globex.id
    assert keys.tenant_for_key(s, key_a + "x") is None
    assert keys.tenant_for_key(s, "") is None


def test_a_revoked_key_stops_working(s: Session) -> None:
    acme = tenants.get_or_create(s, "acme")
    globex = tenants.get_or_create(s, "globex")
    plaintext, row = keys.create_key(s, acme.id)
    assert keys.revoke(s, globex.id, row.id) is False  # not theirs
    assert keys.tenant_for_key(s, plaintext) == acme.id
    assert keys.revoke(s, acme.id, row.id) is True
    assert keys.tenant_for_key(s, plaintext) is None
    assert keys.revoke(s, acme.id, row.id) is False
    assert [k.id for k in keys.list_for_tenant(s, acme.id)] == [row.id]
