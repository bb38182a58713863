"""CSV uploads: a header row, numeric features, a numeric or string-labelled target column.

All-numeric files take NumPy's C reader; anything else (or any problem) takes the careful
path through the csv module, which names the 1-based data row and the column at fault.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from array import array
from typing import Any

import numpy as np

from core.datasets.dataset import (
    Array,
    Dataset,
    DatasetLimits,
    check_size,
    encode_labels,
    finish,
    finish_features,
)
from core.errors import DatasetError


def parse_csv(data: bytes, target: str | None, limits: DatasetLimits,
              features_only: bool = False) -> Dataset:
    """CSV with a header row; the ``target`` column (default last) holds y.

    ``features_only``: every column is a feature (no y); a cell "nan" or "inf" is kept (a
    batch prediction lists its row), an empty one is still an error.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"CSV must be UTF-8 text: byte {exc.start} is not valid UTF-8 "
                           "(save the file as UTF-8)", "file") from None
    fast = _parse_numeric_csv(text, target, limits, features_only)
    if fast is not None:
        return fast
    # The careful path: slower, but it names the row and column of every problem. It reads
    # row by row: the limits stop it at the first row past them, and the features go straight
    # into a float buffer, so memory follows what was read (not a list of strings per cell).
    # newline="": the csv module itself sees every \r; strict: malformed quoting is an error
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = (row for row in reader if row and any(cell.strip() for cell in row))
    try:
        first = next(rows, None)
        if first is None:
            raise DatasetError("the CSV file is empty", "file")
        header = [cell.strip() for cell in first]
        _check_header(header)
        width = len(header)
        if width < (1 if features_only else 2):
            raise DatasetError("the CSV needs at least one feature column and a target "
                               "column", "file")
        t = None if features_only else width - 1 if target is None else \
            _target_index(header, target)
        features = [i for i in range(width) if i != t]
        check_size(0, len(features), limits)
        names = [header[i] for i in features]
        values: array[float] = array("d")
        labels: list[str] = []
        for index, row in enumerate(rows, start=1):
            if index > limits.max_rows:
                raise _too_many_rows(limits)
            if len(row) != width:
                raise DatasetError(f"row {index} (line {reader.line_num}) has {len(row)} "
                                   f"columns, expected {width} like the header", "file")
            values.extend(_row_numbers(row, features, names, index, features_only))
            labels.append("" if t is None else row[t])
    except csv.Error as exc:
        raise DatasetError(f"line {reader.line_num}: not valid CSV: {exc}", "file") from None
    if not labels:
        raise DatasetError("the CSV has a header but no data rows", "file")
    X = np.frombuffer(values, dtype=np.float64).reshape(len(labels), len(features)).copy()
    if t is None:
        return finish_features(X, limits=limits, feature_names=names)
    y, classes = _target_values(np.array(labels, dtype=object), header[t], t)
    return finish(X, y, limits=limits, classes=classes, feature_names=names)


def _parse_numeric_csv(text: str, target: str | None, limits: DatasetLimits,
                       features_only: bool = False) -> Dataset | None:
    """NumPy's C parser for the common all-numeric file; None sends it to the careful path."""
    first, _, rest = text.partition("\n")
    try:
        header = [cell.strip() for cell in next(csv.reader([first], strict=True), [])]
    except csv.Error:
        return None
    if len(header) < (1 if features_only else 2) or not rest.strip():
        return None
    _check_header(header)
    check_size(0, len(header) - (0 if features_only else 1), limits)
    # NumPy allocates max_rows x columns up front (5,000 columns x the row limit was 37 GiB):
    # the lines in the text bound the rows, so it allocates by what was sent.
    max_rows = min(limits.max_rows + 1, rest.count("\n") + 1)
    try:
        with warnings.catch_warnings():
            # NumPy notes that blank lines do not count towards max_rows: that is what we want.
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(io.StringIO(rest), delimiter=",", dtype=np.float64, ndmin=2,
                               comments=None, quotechar='"', max_rows=max_rows)
    except ValueError:
        return None
    if table.shape[0] > limits.max_rows:
        raise _too_many_rows(limits)
    if table.shape[1] != len(header):
        return None
    if features_only:
        return finish_features(table, limits=limits, feature_names=header)
    if not bool(np.isfinite(table).all()):
        return None
    t = len(header) - 1 if target is None else _target_index(header, target)
    features = [i for i in range(len(header)) if i != t]
    check_size(table.shape[0], len(features), limits)
    return finish(table[:, features], table[:, t], limits=limits,
                  feature_names=[header[i] for i in features])


def _too_many_rows(limits: DatasetLimits) -> DatasetError:
    # Reading stops at the first row past the limit: how many more there are is not known.
    return DatasetError(f"more than {limits.max_rows} rows: over the limit of "
                        f"{limits.max_rows}", "file")


def _check_header(header: list[str]) -> None:
    if all(_is_number(cell) for cell in header):
        raise DatasetError("the first row must be a header of column names; it holds only "
                           "numbers", "file")
    for i, name in enumerate(header, start=1):
        if not name:
            raise DatasetError(f"header column {i} has no name", "file")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DatasetError(f"header column name {name!r} appears twice", "file")
        seen.add(name)


def _target_index(header: list[str], target: str) -> int:
    if target not in header:
        raise DatasetError(f"target column {target!r} is not in the header {header}", "target")
    return header.index(target)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _row_numbers(row: list[str], features: list[int], names: list[str],
                 index: int, nonfinite_ok: bool = False) -> list[float]:
    """One data row's feature cells as floats; the first bad cell is named."""
    out = []
    for j, column in enumerate(features):
        cell = row[column].strip()
        where = f"row {index}, column {column + 1} ({names[j]!r})"
        if not cell:
            raise DatasetError(f"{where}: empty cell; every feature needs a number", "file")
        try:
            value = float(cell)
        except ValueError:
            raise DatasetError(f"{where}: {cell[:40]!r} is not a number", "file") from None
        if not math.isfinite(value) and not nonfinite_ok:
            raise DatasetError(f"{where}: NaN or inf values are not allowed", "file")
        out.append(value)
    return out


def _target_values(labels: Array, name: str, column: int) -> tuple[Array, list[Any] | None]:
    """Numeric targets stay numbers; any non-numeric label makes them all class names."""
    stripped = np.array([str(v).strip() for v in labels], dtype=object)
    empty = np.flatnonzero(stripped == "")
    if empty.size:
        raise DatasetError(f"row {int(empty[0]) + 1}, column {column + 1} ({name!r}): empty "
                           "target cell", "file")
    if all(_is_number(v) for v in stripped):
        y = stripped.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DatasetError(f"row {int(bad[0]) + 1}, column {column + 1} ({name!r}): NaN or "
                               "inf values are not allowed", "file")
        return y, None
    return encode_labels(stripped.astype(str))
