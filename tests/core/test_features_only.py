"""Datasets uploaded without a target (`features_only`): every format reads X alone, keeps
rows with NaN or inf (a batch prediction lists them), and training refuses such a dataset."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from core.datasets import FORMATS, parse_dataset, validate_for_spec
from core.datasets.dataset import FEATURES_ONLY, DatasetLimits
from core.datasets.validate import check_trainable
from core.errors import DatasetError
from core.spec import Spec


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


X = np.array([[1.0, 2.0, 3.0], [np.nan, 5.0, 6.0], [7.0, np.inf, 9.0]])
FILES = {
    "csv": b"a,b,c\n1,2,3\nnan,5,6\n7,inf,9\n",
    "npz": npz(X=X),
    "json": json.dumps({"X": X.tolist(), "feature_names": ["a", "b", "c"]}).encode(),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_reads_features_alone_and_keeps_non_finite_rows(fmt: str) -> None:
    data = parse_dataset(FILES[fmt], fmt, features_only=True)
    assert data.kind == FEATURES_ONLY and data.classes is None
    assert data.y.shape == (3, 0)
    np.testing.assert_array_equal(data.X, X)  # NaN and inf rows kept, in order
    assert data.X.dtype == np.float64
    with pytest.raises(DatasetError, match=r"not trained on") as refused:
        check_trainable(data)
    assert refused.value.field == "dataset"


def test_an_empty_csv_cell_is_still_an_error_naming_it() -> None:
    data = parse_dataset(b'a,b\n"1",2\nnan,4\n', "csv", features_only=True)
    np.testing.assert_array_equal(data.X, [[1.0, 2.0], [np.nan, 4.0]])
    with pytest.raises(DatasetError, match="row 2, column 1"):
        parse_dataset(b'a,b\n"1",2\n,4\n', "csv", features_only=True)  # empty: an error still


def test_a_one_column_csv_is_one_feature() -> None:
    assert parse_dataset(b"a\n1\n2\n", "csv", features_only=True).X.shape == (2, 1)


def test_a_target_or_y_with_features_only_is_refused_naming_the_field() -> None:
    with pytest.raises(DatasetError) as target:
        parse_dataset(FILES["csv"], "csv", target="c", features_only=True)
    assert target.value.field == "target"
    with pytest.raises(DatasetError) as y_npz:
        parse_dataset(npz(X=X, y=np.zeros(3)), "npz", features_only=True)
    assert y_npz.value.field == "features_only"
    with pytest.raises(DatasetError) as y_json:
        parse_dataset(json.dumps({"X": [[1.0]], "y": [0]}).encode(), "json",
                      features_only=True)
    assert y_json.value.field == "features_only"


def test_without_the_flag_a_file_without_y_is_refused_as_before() -> None:
    with pytest.raises(DatasetError, match="needs X and y"):
        parse_dataset(npz(X=X), "npz")
    with pytest.raises(DatasetError, match="NaN or inf"):
        parse_dataset(npz(X=X, y=np.zeros(3)), "npz")


def test_limits_hold_for_features_only_datasets() -> None:
    with pytest.raises(DatasetError, match="rows exceed"):
        parse_dataset(FILES["npz"], "npz", features_only=True,
                      limits=DatasetLimits(max_rows=2))


def test_validate_for_spec_refuses_a_dataset_without_a_target() -> None:
    data = parse_dataset(FILES["npz"], "npz", features_only=True)
    spec = Spec.from_dict({"model": {"layers": [{"type": "dense", "units": 2}]}})
    with pytest.raises(DatasetError) as refused:
        validate_for_spec(data, spec)
    assert refused.value.field == "dataset"
