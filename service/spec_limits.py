"""A spec is bounded before it is parsed: its bytes, and how deep its JSON nests (issue 19).

Validating a 34 MB spec of 10^6 layers took 11 s of API CPU, and a `__spec__` nested 10^5
deep in an imported checkpoint answered 500. `WEIGHTSMITH_MAX_SPEC_BYTES` bounds the text of
a job spec (the body of `POST /v1/jobs` and `/v1/jobs:validate`) and of an imported model
spec (`__spec__` or the `spec` field), a 413; `WEIGHTSMITH_MAX_JSON_DEPTH` bounds its nesting,
a 422. Both are checked on the raw text, without parsing it: strings are removed (they may
hold brackets), and the depth is the running count of opening minus closing brackets.
"""

from __future__ import annotations

import re

import numpy as np

from config.settings import Limits
from service.errors import ApiError, validation_error

# The endpoints whose whole JSON body is a job spec (or a sweep: a base spec and its space;
# a range test: a spec and three numbers).
SPEC_ENDPOINTS = frozenset({"jobs.validate_job", "jobs.submit_job", "sweeps.submit_sweep",
                            "lr_range_tests.submit_lr_range_test"})
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def nesting_depth(text: bytes) -> int:
    """How deep the brackets of a JSON text nest (0 for a scalar); linear, no parsing."""
    steps = _STEP[np.frombuffer(_STRING.sub(b'""', text), dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def check_spec_size(raw: bytes, limits: Limits, field: str) -> None:
    """413 past `limits.max_spec_bytes`, naming `field`. (A request body's nesting is the
    JSON body guard's: 400, service/api/common.py, with the same `max_json_depth`.)"""
    if len(raw) > limits.max_spec_bytes:
        message = (f"the spec is {len(raw)} bytes; at most {limits.max_spec_bytes} "
                   "(WEIGHTSMITH_MAX_SPEC_BYTES)")
        raise ApiError(413, f"{field}: {message}", kind="spec-too-large",
                       errors=[{"field": field, "message": message}])


def check_spec_text(text: bytes | str, limits: Limits, field: str) -> None:
    """A spec outside a JSON body (an import's): 413 past `limits.max_spec_bytes`, 422 past
    `limits.max_json_depth`, naming `field`."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    check_spec_size(raw, limits, field)
    depth = nesting_depth(raw)
    if depth > limits.max_json_depth:
        raise validation_error(field, f"nests {depth} levels deep; at most "
                               f"{limits.max_json_depth} (WEIGHTSMITH_MAX_JSON_DEPTH)")
