"""The payloads of issue 19's hostile probe classes, built in one place.

The tests that prove each refusal (tests/service/test_budgets.py, test_hostile_inputs.py,
tests/worker/test_memory_limit.py) and the probe that re-runs every class against a live
service (benchmarks/service/probe_hostile.py) build their inputs here, so a case is spelled
once.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.service.helpers import npz_bytes
from tests.service.test_checkpoints import weights_npz

# -- job specs: tiny parameter counts, huge activations or many layers ---------------------------


# The dry run's training-memory estimate of padded_conv(padding) as the refusals print it
# (pinned: a change of the estimate's model shows here, once for every test that names it).
PADDED_CONV_ESTIMATES = {
    1200: "47,803,418,000 bytes (44.5 GiB)",
    100_000: "329,786,382,208,400 bytes (300 TiB)",
}


def padded_conv(padding: int) -> dict[str, Any]:
    """A 1x1 conv padded to (8 + 2p)^2 pixels, pooled down to 4x4: 172 parameters."""
    side = 8 + 2 * padding
    return {
        "name": "padded", "dataset": "builtin:digits_images",
        "model": {"layers": [
            {"type": "conv2d", "filters": 1, "kernel_size": 1, "padding": padding},
            {"type": "max_pool2d", "pool_size": side // 4},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ]},
        "training": {"epochs": 1, "batch_size": 32},
    }


def deep_relus(n: int) -> dict[str, Any]:
    """dense 64 -> 10 (650 parameters), then `n` ReLU layers: 7.2 GB at n = 10^5."""
    return {"name": "deep", "dataset": "builtin:digits",
            "model": {"layers": [{"type": "dense", "units": 10},
                                 *({"type": "activation", "activation": "relu"}
                                   for _ in range(n))]},
            "training": {"epochs": 1, "batch_size": 32}}


def conv_weights(padding: int) -> bytes:
    """A ~1 KB weights.npz of `padded_conv(padding)`'s model on 1x8x8 images."""
    spec = padded_conv(padding)["model"]
    arrays = {"0.weight": np.ones((1, 1, 1, 1), np.float32), "0.bias": np.zeros(1, np.float32),
              "3.weight": np.zeros((16, 10), np.float32), "3.bias": np.zeros(10, np.float32),
              "__spec__": np.array(json.dumps(spec)),
              "__input_mean__": np.zeros((1, 8, 8)), "__input_std__": np.ones((1, 8, 8))}
    return npz_bytes(**arrays)


# -- imported weights: dtypes, values, specs and archives that lie -------------------------------


def arrays_of(payload: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(payload)) as npz:
        return {k: npz[k] for k in npz.files}


def weights(key: str) -> Any:
    """One array of the small valid weights.npz (tests/service/test_checkpoints.py's)."""
    return arrays_of(weights_npz()[0])[key]


def changed(**replace: Any) -> bytes:
    """The small valid weights.npz with some arrays replaced."""
    return npz_bytes(**{**arrays_of(weights_npz()[0]), **replace})


def with_member(name: str, edit: Callable[[bytes], bytes]) -> bytes:
    """The weights with one member's bytes (header included) edited, re-zipped as is."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(weights_npz()[0])) as src, \
            zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, edit(data) if info.filename == name else data)
    return out.getvalue()


def with_lying_crc(name: str) -> bytes:
    """A stored (uncompressed) member whose last data byte no longer matches its CRC-32."""
    payload = bytearray(weights_npz()[0])
    with zipfile.ZipFile(io.BytesIO(bytes(payload))) as archive:
        info = archive.getinfo(name)
    offset = info.header_offset
    name_len = int.from_bytes(payload[offset + 26:offset + 28], "little")
    extra_len = int.from_bytes(payload[offset + 28:offset + 30], "little")
    payload[offset + 30 + name_len + extra_len + info.compress_size - 1] ^= 0xFF
    return bytes(payload)


def npy_header(descr: str, shape: str) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        end = data.index(b"\n")
        header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
        return data[:10] + header.encode().ljust(end - 10) + data[end:]
    return edit


DEEP = "[" * 100_000 + "]" * 100_000
# (case, payload builder, status, a fragment of the message naming `file`)
IMPORT_CASES: list[tuple[str, Callable[[], bytes], int, str]] = [
    ("float16 weights", lambda: changed(**{"0.weight": weights("0.weight").astype(np.float16)}),
     422, "0.weight: dtype float16 is not supported"),
    ("integer weights", lambda: changed(**{"0.weight": weights("0.weight").astype(np.int64)}),
     422, "dtype int64 is not supported"),
    ("complex weights", lambda: changed(**{"1.bias": weights("1.bias").astype(np.complex128)}),
     422, "1.bias: dtype complex128 is not supported"),
    ("NaN weights", lambda: changed(**{"0.weight": np.full_like(weights("0.weight"), np.nan)}),
     422, "0.weight: NaN or infinite values"),
    ("infinite bias", lambda: changed(**{"1.bias": np.full_like(weights("1.bias"), np.inf)}),
     422, "1.bias: NaN or infinite values"),
    ("zero std", lambda: changed(__input_mean__=np.zeros(4), __input_std__=np.array(
        [1.0, 0.0, 1.0, 1.0])), 422, "__input_std__: every std must be positive"),
    ("__spec__ nested 10^5 deep", lambda: changed(__spec__=np.array(DEEP)),
     422, "nests 100000 levels deep"),
    ("__spec__ over the spec size", lambda: changed(__spec__=np.array(
        json.dumps({"layers": [{"type": "dense", "units": 3}], "pad": "x" * 300_000}))),
     413, "the spec is"),
    ("a member whose CRC lies", lambda: with_lying_crc("0.weight.npy"),
     422, "Bad CRC-32"),
    ("malformed .npy header", lambda: with_member("0.weight.npy", npy_header("<f8", "(4, 5) x")),
     422, "not a .npy array"),
    (".npy header declaring 2.9 TiB", lambda: with_member(
        "0.weight.npy", npy_header("<f8", "(99999999999, 5)")), 422, "the header declares"),
]

# -- predict inputs that are not numbers, or overflow a float32 model -----------------------------

# (case, inputs for a 4-feature model, a fragment of the detail)
PREDICT_NOT_NUMBERS: list[tuple[str, list[Any], str]] = [
    ("string", [["1", 0, 0, 0]], "JSON numbers only, got string"),
    ("boolean", [[True, 0, 0, 0]], "JSON numbers only, got boolean"),
    ("null", [[1, 0, 0, 0], [0, 0, None, 0]], "JSON numbers only, got null"),
    ("object", [[[1, {"a": 1}], 0, 0, 0]], "JSON numbers only"),
]
FLOAT32_OVERFLOWS = (1e308, -1e39, 3.5e38)


def float32_weights() -> bytes:
    """The small valid weights.npz with its float64 arrays cast to float32."""
    return npz_bytes(**{k: (v.astype(np.float32) if v.dtype == np.float64 else v)
                        for k, v in arrays_of(weights_npz()[0]).items()})


# -- Authorization headers that are not `Bearer <key>` with one space -----------------------------

# (id, header with "{key}" for the key); each is a 401, and counts as a failed authentication
MALFORMED_AUTHORIZATION: list[tuple[str, str]] = [
    ("two spaces", "Bearer  {key}"), ("trailing space", "Bearer {key} "),
    ("leading space", " Bearer {key}"), ("tab", "Bearer\t{key}"), ("no key", "Bearer"),
    ("empty key", "Bearer "), ("other scheme", "Token {key}"),
    ("two tokens", "Bearer {key} extra"), ("two credentials", "Bearer {key},Bearer {key}"),
    ("basic", "Basic {key}"), ("non-ascii", "Bearer {key}\u00e9"),
]
