"""Parsing uploaded datasets from bytes: CSV with a header, NPZ (never pickles), JSON.

Every failure is a DatasetError naming what to fix: the row (1-based, counting data rows
after the header) and column of a bad cell, the member of an archive, the limit exceeded.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast

import numpy as np

from core.datasets.csvfile import parse_csv
from core.datasets.dataset import (
    Array,
    Dataset,
    DatasetLimits,
    check_size,
    encode_labels,
    finish,
    finish_features,
)
from core.datasets.stored import read_npy_header
from core.errors import DatasetError

MAX_JSON_DEPTH = 8
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_dataset(data: bytes | IO[bytes], fmt: str, *, target: str | None = None,
                  limits: DatasetLimits | None = None, features_only: bool = False) -> Dataset:
    """Parse an upload into a :class:`Dataset`.

    Parameters
    ----------
    data : the raw bytes of the file, or the file (seekable; the API spools uploads to
        disk): an NPZ's arrays are then read from it member by member, never held as one
        more copy of the file; text is read into bytes once
    fmt : a name in :data:`FORMATS` ("csv", "npz" or "json")
    target : formats that take one (CSV): the label column (default: the last column)
    limits : size limits; ``max_bytes`` also bounds an NPZ's decompressed size
    features_only : the file has no target (a dataset to score, never to train on): every
        CSV column is a feature, an NPZ or JSON holds X only; rows with NaN/inf are kept
    """
    limits = limits or DatasetLimits()
    size = len(data) if isinstance(data, bytes) else data.seek(0, io.SEEK_END)
    if size > limits.max_bytes:
        raise DatasetError(f"the file has {size} bytes, more than the limit of "
                           f"{limits.max_bytes}", "file")
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}",
                           "format")
    form = FORMATS[fmt]
    if target is not None and not form.takes_target:
        takers = ", ".join(f.name.upper() for f in FORMATS.values() if f.takes_target)
        raise DatasetError(f"target only applies to {takers}; {fmt} files name X and y",
                           "target")
    if features_only and target is not None:
        raise DatasetError("a features_only dataset has no target column", "target")
    if not isinstance(data, bytes):
        data.seek(0)
        if fmt != "npz":
            data = data.read()  # text is parsed from bytes: the one copy of the file
    # parse_npz takes a file as it takes bytes (zipfile reads either)
    return form.parse(cast(bytes, data), target, limits, features_only)


def parse_npz(data: bytes | IO[bytes], limits: DatasetLimits,
              features_only: bool = False) -> Dataset:
    """An ``.npz`` with arrays X and y (only X when ``features_only``); sizes are checked
    from the headers before reading."""
    try:
        arrays = _read_npz(data, limits, ("X",) if features_only else ("X", "y"))
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError,
            OSError, ValueError, KeyError, RuntimeError, NotImplementedError,
            UnicodeDecodeError) as exc:
        # A damaged archive fails somewhere inside zipfile/zlib/numpy in many ways; every
        # one of them is the same answer for the user.
        raise DatasetError(f"not a readable .npz file (a zip archive of .npy arrays): "
                           f"{type(exc).__name__}: {str(exc)[:120]}", "file") from None
    if features_only:
        return finish_features(arrays["X"], limits=limits)
    X, y = arrays["X"], arrays["y"]
    classes = None
    if y.dtype.kind in "US":
        y, classes = encode_labels(y.astype(str))
    return finish(X, y, limits=limits, classes=classes)


def _read_npz(data: bytes | IO[bytes], limits: DatasetLimits,
              names: tuple[str, ...] = ("X", "y")) -> dict[str, Array]:
    with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as archive:
        members = {info.filename: info for info in archive.infolist()}
        found = sorted(m.removesuffix(".npy") for m in members)
        for needed in ("X.npy", "y.npy"):
            if needed not in members and needed[:-4] in names:
                raise DatasetError(f"the .npz has no array {needed[:-4]!r}; it needs X and y "
                                   f"(found {found})", "file")
            if needed in members and needed[:-4] not in names:
                raise DatasetError(f"the .npz has an array {needed[:-4]!r}, but a "
                                   "features_only dataset holds X only", "features_only")
        # The sizes in the zip directory bound what zipfile will ever inflate.
        total = sum(members[m + ".npy"].file_size for m in names)
        if total > limits.max_bytes:
            raise DatasetError(f"the arrays decompress to {total} bytes, more than the limit "
                               f"of {limits.max_bytes}", "file")
        return {name: _read_member(archive, name + ".npy", limits) for name in names}


def _read_member(archive: zipfile.ZipFile, name: str, limits: DatasetLimits) -> Array:
    label = name.removesuffix(".npy")
    with archive.open(name) as f:
        try:
            shape, _, dtype = read_npy_header(f)
        except ValueError as exc:
            raise DatasetError(f"array {label!r} is not a valid .npy: {exc}", "file") from None
        if dtype.hasobject:
            raise DatasetError(f"array {label!r} has dtype object; pickled arrays are refused "
                               "(save numbers or strings)", "file")
        allowed = "fiub" if label == "X" else "fiubUS"
        if dtype.kind not in allowed:
            raise DatasetError(f"array {label!r} has dtype {dtype}; expected numbers", "file")
        if math.prod(shape) * dtype.itemsize > limits.max_bytes:
            raise DatasetError(f"array {label!r} of shape {shape} is larger than "
                               f"{limits.max_bytes} bytes", "file")
        if label == "X" and len(shape) >= 1:
            check_size(int(shape[0]), math.prod(shape[1:]), limits)
    with archive.open(name) as f:
        try:
            return np.asarray(np.lib.format.read_array(f, allow_pickle=False))
        except ValueError as exc:
            raise DatasetError(f"array {label!r} could not be read: {exc}", "file") from None


def parse_json(data: bytes, limits: DatasetLimits, features_only: bool = False) -> Dataset:
    """``{"X": [[...], ...], "y": [...]}`` (``{"X": ...}`` alone when ``features_only``);
    nesting deeper than MAX_JSON_DEPTH is refused."""
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise DatasetError(f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} "
                           "are allowed", "file")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DatasetError(f"not valid JSON: {exc}", "file") from None
    if features_only:
        if not isinstance(doc, dict) or "X" not in doc:
            raise DatasetError('a features_only JSON must be an object {"X": [[...], ...]}',
                               "file")
        if "y" in doc:
            raise DatasetError("the JSON has y, but a features_only dataset holds X only",
                               "features_only")
    elif not isinstance(doc, dict) or "X" not in doc or "y" not in doc:
        raise DatasetError('JSON must be an object {"X": [[...], ...], "y": [...]}', "file")
    unknown = sorted(set(doc) - {"X", "y", "feature_names"})
    if unknown:
        raise DatasetError(f"unknown keys {unknown}; expected X, y and optional "
                           "feature_names", "file")
    X = _json_array(doc["X"], "X")
    names = doc.get("feature_names")
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)):
        raise DatasetError("feature_names must be a list of strings", "feature_names")
    if features_only:
        return finish_features(X, limits=limits, feature_names=names)
    raw_y = doc["y"]
    classes = None
    if isinstance(raw_y, list) and raw_y and all(isinstance(v, str) for v in raw_y):
        y, classes = encode_labels(np.array(raw_y, dtype=str))
    else:
        y = _json_array(raw_y, "y")
    return finish(X, y, limits=limits, classes=classes, feature_names=names)


def _json_depth(data: bytes) -> int:
    """Maximum bracket nesting, strings removed first (C-speed passes: uploads can be large)."""
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    opens = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((opens == ord("[")) | (opens == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def _json_array(value: Any, name: str) -> Array:
    """Nested lists of numbers -> array; names the first ragged or non-numeric row."""
    if not isinstance(value, list) or not value:
        raise DatasetError(f"{name} must be a non-empty list", name)
    try:
        array = np.array(value)
    except ValueError:
        array = None
    if array is not None and array.dtype.kind in "iuf":
        return array
    first = value[0]
    width = len(first) if isinstance(first, list) else None
    for r, row in enumerate(value, start=1):
        row_width = len(row) if isinstance(row, list) else None
        if row_width != width:
            raise DatasetError(f"{name} row {r}: has {row_width or 'no list of'} values, "
                               f"expected {width} like row 1", name)
        cells = row if isinstance(row, list) else [row]
        for c, cell in enumerate(_flatten(cells), start=1):
            if isinstance(cell, bool) or not isinstance(cell, int | float):
                raise DatasetError(f"{name} row {r}, value {c}: {json.dumps(cell)[:40]} is not "
                                   "a number", name)
    raise DatasetError(f"{name} must be a regular (rectangular) array of numbers", name)


def _flatten(cells: list[Any]) -> list[Any]:
    out: list[Any] = []
    for cell in cells:
        out.extend(_flatten(cell) if isinstance(cell, list) else [cell])
    return out


@dataclass(frozen=True)
class DatasetFormat:
    """One upload format: its parser and how an upload in it is recognised.

    The parser (:func:`parse_dataset`), the upload endpoint (service/api/datasets.py: the
    Content-Type or file suffix that picks the format), its OpenAPI request body and the
    CLI (which files it uploads) all read these entries: a new format is one entry here.
    """

    name: str
    # (data, target, limits, features_only)
    parse: Callable[[bytes, str | None, DatasetLimits, bool], Dataset]
    media_types: tuple[str, ...]  # Content-Types that mean this format; the first is its own
    suffixes: tuple[str, ...]  # file name suffixes, lower case, with the dot
    summary: str  # what the file holds, for the API docs and the CLI's help
    body_schema: dict[str, Any] = field(default_factory=dict)  # OpenAPI schema of the raw body
    takes_target: bool = False  # a `target` (label column) applies


FORMATS: dict[str, DatasetFormat] = {f.name: f for f in (
    DatasetFormat(
        "csv", parse_csv, ("text/csv", "application/csv"), (".csv",),
        "CSV with a header row; the `target` column (default the last) holds the labels",
        {"type": "string"}, takes_target=True),
    DatasetFormat(
        "npz", lambda data, _target, limits, features: parse_npz(data, limits, features),
        ("application/x-npz", "application/zip", "application/octet-stream"), (".npz",),
        "NPZ with arrays `X` and `y` (never unpickled)",
        {"type": "string", "format": "binary"}),
    DatasetFormat(
        "json", lambda data, _target, limits, features: parse_json(data, limits, features),
        ("application/json",), (".json",),
        'JSON `{"X": [[...], ...], "y": [...]}` (optional `feature_names`)',
        {"type": "object", "required": ["X", "y"],
         "properties": {"X": {"type": "array"}, "y": {"type": "array"},
                        "feature_names": {"type": "array", "items": {"type": "string"}}}}),
)}


def format_for(*, media_type: str | None = None, filename: str | None = None
               ) -> DatasetFormat | None:
    """The format a file name's suffix names, else the one a Content-Type names, else None."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else None
    for form in FORMATS.values():
        if suffix in form.suffixes:
            return form
    for form in FORMATS.values():
        if media_type in form.media_types:
            return form
    return None


def suffixes() -> tuple[str, ...]:
    """Every format's file suffixes, in registry order (".csv", ".npz", ".json")."""
    return tuple(suffix for form in FORMATS.values() for suffix in form.suffixes)
