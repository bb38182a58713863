"""Pure helpers of the service: model cache, npz guard, JSON depth, keys, problem documents."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from flask import Flask

from service.api.common import check_idempotency_key, json_depth_exceeds
from service.api.npz_guard import check_npz
from service.auth import hash_key
from service.errors import ApiError, problem
from service.model_cache import ModelCache


def test_model_cache_is_lru_and_counts_hits() -> None:
    cache = ModelCache(capacity=2)
    loads: list[str] = []

    def loader(key: str) -> object:
        def load() -> object:
            loads.append(key)
            return {"key": key}
        return load

    assert cache.get_or_load("a", loader("a")) == {"key": "a"}
    assert cache.get_or_load("b", loader("b")) == {"key": "b"}
    assert cache.get_or_load("a", loader("a")) == {"key": "a"}  # hit; a is now newest
    cache.get_or_load("c", loader("c"))  # evicts b, the least recently used
    assert "a" in cache and "c" in cache and "b" not in cache
    assert loads == ["a", "b", "c"]
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 2)
    with pytest.raises(ValueError):
        ModelCache(capacity=0)


def test_model_cache_is_bounded_by_bytes_and_remeasures() -> None:
    cache = ModelCache(None, max_bytes=10, size_of=len)
    cache.get_or_load("a", lambda: [0] * 4)
    cache.get_or_load("b", lambda: [0] * 4)
    assert (len(cache), cache.bytes) == (2, 8)
    cache.get_or_load("c", lambda: [0] * 4)  # 12 > 10: a, the least recently used, goes
    assert "a" not in cache and cache.bytes == 8
    grown = cache.get_or_load("b", lambda: [])
    grown.extend([0] * 4)  # b grew while in use (a network's scratch after a forward pass)
    cache.remeasure("b", 1)
    assert "c" not in cache and "b" in cache and cache.bytes == 8
    grown.extend([0] * 2)  # by a use no larger than the one measured: not walked again
    cache.remeasure("b", 1)
    assert cache.bytes == 8
    cache.remeasure("b", 2)  # a larger use is
    assert cache.bytes == 10
    big = cache.get_or_load("d", lambda: [0] * 11)  # larger than the cache: served, not kept
    assert len(big) == 11 and "d" not in cache and "b" in cache



def batch(first: int, size: int) -> list[tuple[int, bytes]]:
    return [(first + i, b"x" * size) for i in range(4)]  # 4 events of `size` bytes


def event_bytes(events: list[tuple[int, bytes]]) -> int:
    return sum(len(chunk) for _, chunk in events)


def test_model_cache_get_and_put_keep_at_most_its_bytes_least_recently_used_out() -> None:
    """What the event streams' replays use (service/event_stream.py, REPLAYS)."""
    cache = ModelCache(None, max_bytes=100, size_of=event_bytes)
    cache.put(("job", 0), batch(0, 10))
    cache.put(("job", 4), batch(4, 10))
    assert cache.bytes == 80
    assert cache.get(("job", 0)) == batch(0, 10)  # now the most recently used
    cache.put(("job", 8), batch(8, 5))  # exactly 100 bytes: kept, nothing dropped
    assert cache.bytes == 100
    cache.put(("job", 12), batch(12, 5))  # over: ("job", 4), least recently used, goes
    assert cache.get(("job", 4)) is None
    assert all(cache.get(("job", k)) is not None for k in (0, 8, 12))
    assert cache.bytes == 80


def test_model_cache_put_keeps_nothing_too_large_and_counts_a_key_put_again_once() -> None:
    cache = ModelCache(None, max_bytes=30, size_of=event_bytes)
    cache.put("big", batch(0, 10))
    assert cache.get("big") is None and cache.bytes == 0
    cache.put("a", batch(0, 5))
    cache.put("a", batch(0, 5))
    assert cache.bytes == 20

def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_npz_guard_accepts_plain_arrays() -> None:
    check_npz(_npz(X=np.zeros((4, 3)), y=np.arange(4)), max_uncompressed=10_000)


def test_npz_guard_refuses_a_zip_bomb_before_inflating_it() -> None:
    bomb = _npz(X=np.zeros((2048, 2048)))  # 32 MiB of zeros, a few KiB compressed
    assert len(bomb) < 100_000
    with pytest.raises(ApiError) as info:
        check_npz(bomb, max_uncompressed=1_000_000)
    assert info.value.status == 413
    assert "decompresses to" in info.value.detail


def test_npz_guard_refuses_object_arrays_and_foreign_members() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ApiError) as info:
        check_npz(buffer.getvalue(), max_uncompressed=10**7)
    assert info.value.status == 422 and "pickle" in info.value.detail

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil.npy", b"x")
    with pytest.raises(ApiError) as info:
        check_npz(buffer.getvalue(), max_uncompressed=10**7)
    assert info.value.status == 422

    with pytest.raises(ApiError) as info:
        check_npz(b"definitely not a zip", max_uncompressed=10**7)
    assert info.value.status == 422


def test_json_depth() -> None:
    nested: object = 1
    for _ in range(10):
        nested = [nested]
    assert not json_depth_exceeds(nested, 10)
    assert json_depth_exceeds([nested], 10)
    assert not json_depth_exceeds({"a": [1, 2, {"b": 3}]}, 3)
    assert json_depth_exceeds({"a": [1, 2, {"b": [3]}]}, 3)


@pytest.mark.parametrize("key", ["a", "x" * 255, "order-42_retry:1", "~!@#$%^&*()"])
def test_idempotency_key_accepts_visible_ascii(key: str) -> None:
    assert check_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there", "caf\u00e9", "nul\x00"])
def test_idempotency_key_refuses_others_with_400(key: str) -> None:
    with pytest.raises(ApiError) as info:
        check_idempotency_key(key)
    assert info.value.status == 400
    assert info.value.errors == [
        {"field": "Idempotency-Key", "message": "1-255 visible ASCII characters"}
    ]


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_problem_document_shape() -> None:
    with Flask(__name__).app_context():
        response = problem(422, "x: bad", kind="validation-error",
                           errors=[{"field": "x", "message": "bad"}], headers={"X-A": "1"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.headers["X-A"] == "1"
    assert response.get_json() == {
        "type": "urn:weightsmith:problem:validation-error", "title": "Unprocessable Entity",
        "status": 422, "detail": "x: bad", "errors": [{"field": "x", "message": "bad"}],
    }
