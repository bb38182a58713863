"""Dataset parsing from bytes (CSV, NPZ, JSON), the builtins, and checks against a spec."""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.datasets import BUILTINS, DatasetLimits, load_builtin, parse_dataset, validate_for_spec
from core.errors import DatasetError, SpecError
from core.spec import Spec


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npz_compressed(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def pickled_npz() -> bytes:
    """An .npz whose X is an object array: np.save pickles it."""
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([[1, {"evil": 1}]], dtype=object), y=np.array([0]))
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """32 MB of zeros in a few tens of KB: refused by the zip headers' sizes, before inflating."""
    return npz_compressed(X=np.zeros((4096, 1024), dtype=np.float64), y=np.zeros(4096))


def lying_npy_header() -> bytes:
    """X.npy whose header claims 10**9 float64 rows over 8 bytes of data."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        npy, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 1)})
    npy.write(b"\0" * 8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", npy.getvalue())
        archive.writestr("y.npy", npy.getvalue())
    return buffer.getvalue()


SMALL = DatasetLimits(max_rows=3, max_features=3, max_bytes=1_000_000)

# (id, format, bytes, exact fragment of the message naming row/column/member)
BAD_DATASETS: list[tuple[str, str, bytes, str]] = [
    ("csv not utf-8", "csv", "a,b\n1,ä\n".encode("latin-1"),
     "CSV must be UTF-8 text: byte 6 is not valid UTF-8"),
    ("csv word in a cell", "csv", b"a,b,y\n1,2,0\n3,x,1\n",
     "row 2, column 2 ('b'): 'x' is not a number"),
    ("csv empty cell", "csv", b"a,b,y\n,2,0\n", "row 1, column 1 ('a'): empty cell"),
    ("csv ragged row", "csv", b"a,b,y\n1,2,0\n3,4\n",
     "row 2 (line 3) has 2 columns, expected 3"),
    ("csv NaN feature", "csv", b"a,b,y\n1,2,0\n1,2,0\nnan,2,1\n",
     "row 3, column 1 ('a'): NaN or inf values are not allowed"),
    ("csv inf target", "csv", b"a,b,y\n1,2,inf\n", "row 1, column 3 ('y'): NaN or inf"),
    ("csv empty target", "csv", b"a,b,y\n1,2,cat\n1,2, \n",
     "row 2, column 3 ('y'): empty target cell"),
    ("csv without header", "csv", b"1,2,3\n4,5,6\n", "the first row must be a header"),
    ("csv duplicate column", "csv", b"a,a,y\n1,2,3\n", "'a' appears twice"),
    ("csv unclosed quote", "csv", b'a,y\n"1,0\n', "line 2: not valid CSV"),
    ("csv header only", "csv", b"a,b,y\n", "no data rows"),
    ("csv single column", "csv", b"y\n1\n", "at least one feature column"),
    ("csv too many rows", "csv", b"a,y\n1,0\n2,0\n3,1\n4,1\n",
     "more than 3 rows: over the limit of 3"),
    ("csv too many features", "csv", b"a,b,c,d,y\n1,2,3,4,0\n",
     "4 features exceed the limit of 3"),
    ("npz not a zip", "npz", b"\x93NUMPY not a zip", "not a readable .npz file"),
    ("npz damaged member", "npz", npz(X=np.ones((2, 2)), y=np.arange(2)).replace(
        b"X.npy", b"Z.npy", 1), "(a zip archive of .npy arrays): BadZipFile: File name"),
    ("npz without y", "npz", npz(X=np.ones((2, 2))), "the .npz has no array 'y'"),
    ("npz pickled object array", "npz", pickled_npz(),
     "array 'X' has dtype object; pickled arrays are refused"),
    ("npz zip bomb", "npz", zip_bomb(), "the arrays decompress to 33587456 bytes"),
    ("npz header claims a huge array", "npz", lying_npy_header(),
     "array 'X' of shape (1000000000, 1) is larger than 1000000 bytes"),
    ("npz NaN row", "npz", npz(X=np.array([[1.0], [2.0], [np.nan]]), y=np.arange(3)),
     "X row 3: NaN or inf values are not allowed"),
    ("npz y NaN", "npz", npz(X=np.ones((2, 1)), y=np.array([0.5, np.inf])),
     "y row 2: NaN or inf"),
    ("npz X is 1-D", "npz", npz(X=np.ones(3), y=np.arange(3)),
     "X must be (N, features), (N, H, W) or (N, C, H, W), got shape (3,)"),
    ("npz y length", "npz", npz(X=np.ones((3, 2)), y=np.arange(2)),
     "y must be (N,) or (N, k) with N = 3 rows like X, got shape (2,)"),
    ("npz complex X", "npz", npz(X=np.ones((2, 2), dtype=complex), y=np.arange(2)),
     "array 'X' has dtype complex128; expected numbers"),
    ("npz too many rows", "npz", npz(X=np.ones((5, 2)), y=np.arange(5)),
     "5 rows exceed the limit of 3"),
    ("json too deep", "json", b'{"X": [[[[[[[[[[1]]]]]]]]]], "y": [0]}',
     "JSON nested 11 levels deep; at most 8"),
    ("json ragged", "json", b'{"X": [[1, 2], [3]], "y": [0, 1]}',
     "X row 2: has 1 values, expected 2 like row 1"),
    ("json string cell", "json", b'{"X": [[1, "a"]], "y": [0]}',
     'X row 1, value 2: "a" is not a number'),
    ("json null cell", "json", b'{"X": [[1, 2], [3, null]], "y": [0, 1]}',
     "X row 2, value 2: null is not a number"),
    ("json NaN literal", "json", b'{"X": [[1, 2], [NaN, 1]], "y": [0, 1]}',
     "X row 2: NaN or inf values are not allowed"),
    ("json missing y", "json", b'{"X": [[1, 2]]}', 'JSON must be an object {"X"'),
    ("json unknown key", "json", b'{"X": [[1]], "y": [0], "Z": 1}', "unknown keys ['Z']"),
    ("json syntax", "json", b'{"X": [[1]], "y": [0]', "not valid JSON"),
    ("unknown format", "parquet", b"PAR1", "unknown format 'parquet'"),
    ("file too large", "csv", b"a,y\n" + b"1,0\n" * 250_001, "more than the limit of 1000000"),
]


@pytest.mark.parametrize(("fmt", "data", "fragment"), [case[1:] for case in BAD_DATASETS],
                         ids=[case[0] for case in BAD_DATASETS])
def test_bad_dataset_is_refused_naming_what_is_wrong(fmt: str, data: bytes, fragment: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_dataset(data, fmt, limits=SMALL)
    assert fragment in str(info.value)


def test_the_table_is_big_enough() -> None:
    assert len(BAD_DATASETS) >= 15
    assert len({case[0] for case in BAD_DATASETS}) == len(BAD_DATASETS)


def test_unknown_csv_target_column_names_the_target_field() -> None:
    with pytest.raises(DatasetError) as info:
        parse_dataset(b"a,b\n1,2\n", "csv", target="label")
    assert info.value.field == "target"
    assert str(info.value) == "target column 'label' is not in the header ['a', 'b']"


def test_zip_bomb_is_small_on_the_wire() -> None:
    assert len(zip_bomb()) < 100_000  # so only the decompressed-size check can catch it


def test_csv_with_string_labels_and_named_target() -> None:
    data = "\ufeffsepal,label,petal\n5.1,setosa,1.4\n6.2, virginica ,5.4\n5.9,versicolor,4.2\n"
    ds = parse_dataset(data.encode(), "csv", target="label")
    np.testing.assert_array_equal(ds.X, [[5.1, 1.4], [6.2, 5.4], [5.9, 4.2]])
    assert ds.X.dtype == np.float64
    assert ds.y.tolist() == [0, 2, 1] and ds.y.dtype == np.int64
    assert ds.classes == ["setosa", "versicolor", "virginica"]
    assert ds.kind == "classification"
    assert ds.feature_names == ["sepal", "petal"]


def test_csv_numeric_targets_infer_the_kind() -> None:
    labels = parse_dataset(b"a,y\n0.5,1\n1.5,0\n\n2.5,2\n", "csv")  # blank line skipped
    assert labels.kind == "classification" and labels.y.tolist() == [1, 0, 2]
    assert labels.classes == [0, 1, 2]
    prices = parse_dataset(b"a,y\n0.5,1.25\n1.5,-3\n", "csv")
    assert prices.kind == "regression" and prices.classes is None
    np.testing.assert_array_equal(prices.y, [1.25, -3.0])


def test_npz_round_trip_of_the_stored_blob_format() -> None:
    X = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ds = parse_dataset(npz_compressed(X=X, y=np.array([3, 1])), "npz")
    assert ds.X.dtype == np.float32 and ds.X.shape == (2, 3, 4)
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.tolist() == [3, 1] and ds.classes == [0, 1, 2, 3]
    words = parse_dataset(npz(X=np.ones((3, 1)), y=np.array(["b", "a", "b"])), "npz")
    assert words.y.tolist() == [1, 0, 1] and words.classes == ["a", "b"]


def test_json_dataset_with_multi_output_regression() -> None:
    doc = {"X": [[1, 2], [3, 4], [5, 6]], "y": [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]],
           "feature_names": ["u", "v"]}
    ds = parse_dataset(json.dumps(doc).encode(), "json")
    assert ds.X.shape == (3, 2) and ds.y.shape == (3, 2)
    assert ds.kind == "regression" and ds.feature_names == ["u", "v"]
    labels = parse_dataset(b'{"X": [[1], [2]], "y": ["no", "yes"]}', "json")
    assert labels.classes == ["no", "yes"] and labels.y.tolist() == [0, 1]


DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
# sha256 of X.tobytes() + y.tobytes(), first 16 hex digits: the builtins never drift.
BUILTIN_HASHES = {
    "digits": ((1797, 64), "faf2d98f61250c1c"),
    "digits_images": ((1797, 1, 8, 8), "faf2d98f61250c1c"),
    "xor": ((4, 2), "23f0d5e52594f837"),
    "noisy_xor": ((400, 2), "8ea110960516d15a"),
    "spirals": ((300, 2), "ccdd6af0b35bfb94"),
    "moons": ((400, 2), "57b353af059771dd"),
}


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_shapes_and_checksums(name: str) -> None:
    ds = load_builtin(name)
    shape, digest = BUILTIN_HASHES[name]
    assert ds.X.shape == shape and ds.X.dtype == np.float32
    assert ds.y.shape == (shape[0],) and ds.y.dtype == np.int64
    assert hashlib.sha256(ds.X.tobytes() + ds.y.tobytes()).hexdigest()[:16] == digest
    assert ds.kind == "classification"
    assert ds.classes == list(range(int(ds.y.max()) + 1))


def test_digits_are_the_uci_digits() -> None:
    ds = load_builtin("digits")
    assert np.bincount(ds.y).tolist() == DIGITS_CLASS_COUNTS
    assert ds.X.min() == 0 and ds.X.max() == 16 and float(ds.X.sum()) == 561718.0
    np.testing.assert_array_equal(load_builtin("digits_images").X.reshape(1797, 64), ds.X)
    shipped = Path(__file__).parents[2] / "core" / "datasets" / "data" / "digits.csv.gz"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == (
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22")


def test_digits_equal_scikit_learns_copy() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    ds = load_builtin("digits")
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)


def test_synthetic_builtins_are_deterministic_and_balanced() -> None:
    assert load_builtin("xor").y.tolist() == [0, 1, 1, 0]
    assert np.bincount(load_builtin("spirals").y).tolist() == [100, 100, 100]
    assert np.bincount(load_builtin("moons").y).tolist() == [200, 200]
    np.testing.assert_array_equal(load_builtin("moons").X, load_builtin("moons").X)
    with pytest.raises(DatasetError, match="unknown builtin dataset 'mnist'"):
        load_builtin("mnist")


def spec(layers: list[dict[str, Any]], loss: str = "cross_entropy") -> Spec:
    return Spec.from_dict({"model": {"layers": layers}, "loss": {"type": loss}})


def test_validate_accepts_matching_data() -> None:
    validate_for_spec(load_builtin("digits"), spec([{"type": "dense", "units": 10}]))
    validate_for_spec(load_builtin("digits_images"), spec([
        {"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "flatten"},
        {"type": "dense", "units": 10}]))


@pytest.mark.parametrize(("layers", "loss", "X", "y", "fragment"), [
    ([{"type": "dense", "units": 9}], "cross_entropy", np.ones((3, 2)), np.array([0, 9, 10]),
     "y row 2: label 9 is outside 0..8; the output layer model.layers[0] has 9 units"),
    ([{"type": "dense", "units": 3}], "cross_entropy", np.ones((2, 2)), np.array([0.5, 1.0]),
     "cross_entropy needs integer class labels"),
    ([{"type": "dense", "units": 2}], "mse", np.ones((2, 2)), np.ones((2, 3)),
     "mse targets have 3 column(s) but the output layer model.layers[0] has 2 units"),
    ([{"type": "dense", "units": 1}], "binary_cross_entropy", np.ones((3, 2)),
     np.array([0.0, 1.0, 2.0]), "y row 3: binary_cross_entropy needs targets in [0, 1]"),
])
def test_validate_refuses_labels_and_targets_that_do_not_fit(
        layers: list[dict[str, Any]], loss: str, X: np.ndarray, y: np.ndarray,
        fragment: str) -> None:
    from core.datasets import Dataset

    with pytest.raises(DatasetError) as info:
        validate_for_spec(Dataset(X, y, "unknown"), spec(layers, loss))
    assert fragment in str(info.value)
    assert info.value.field == "dataset"


def test_one_dataset_checked_against_many_output_layers_keeps_its_answers() -> None:
    from core.datasets import Dataset

    data = Dataset(np.ones((4, 2)), np.array([0, 2, 1, -1]), "unknown")
    for units in (3, 4, 5):  # the label range is worked out once, the misfit row every time
        with pytest.raises(DatasetError, match="y row 4: label -1 is outside"):
            validate_for_spec(data, spec([{"type": "dense", "units": units}]))
    fits = Dataset(np.ones((3, 2)), np.array([0, 3, 1]), "unknown")
    validate_for_spec(fits, spec([{"type": "dense", "units": 4}]))
    with pytest.raises(DatasetError, match=r"y row 2: label 3 is outside 0\.\.2"):
        validate_for_spec(fits, spec([{"type": "dense", "units": 3}]))
    assert fits.y_range == (0.0, 3.0)


def test_validate_reports_shape_problems_as_spec_errors() -> None:
    with pytest.raises(SpecError) as info:
        validate_for_spec(load_builtin("digits"), spec([
            {"type": "conv2d", "filters": 2, "kernel_size": 3}, {"type": "flatten"},
            {"type": "dense", "units": 10}]))
    assert info.value.field == "model.layers[0]"
    with pytest.raises(SpecError) as info:
        validate_for_spec(load_builtin("digits_images"), spec([{"type": "dense", "units": 10}]))
    assert info.value.message.endswith("add a flatten layer before it")


def test_zip_helper_members_are_what_numpy_writes() -> None:
    with zipfile.ZipFile(io.BytesIO(npz(X=np.ones(1), y=np.ones(1)))) as archive:
        assert archive.namelist() == ["X.npy", "y.npy"]


def test_fast_and_careful_csv_paths_agree() -> None:
    plain = parse_dataset(b"a,b,y\n1.5,2,0\n3,-4e-1,1\n", "csv")  # NumPy's C parser
    quoted = parse_dataset(b'a,b,y\n 1.5 ," 2",0\n3,-4e-1,"1"\n', "csv")  # the csv module
    np.testing.assert_array_equal(plain.X, quoted.X)
    np.testing.assert_array_equal(plain.y, quoted.y)
    assert plain.kind == quoted.kind == "classification"
    assert plain.feature_names == quoted.feature_names == ["a", "b"]


def test_csv_with_old_mac_line_endings_and_quoted_newlines() -> None:
    ds = parse_dataset(b'a,note,y\r1,"two\rlines",0\r2,x,1\r', "csv", target="note")
    assert ds.classes == ["two\rlines", "x"] and ds.y.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.X, [[1.0, 0.0], [2.0, 1.0]])
    with pytest.raises(DatasetError, match=re.escape("row 1, column 2 ('note')")):
        parse_dataset(b'a,note,y\r1,"two\rlines",0\r', "csv")


def test_random_corruptions_only_ever_raise_dataset_errors() -> None:
    """Any other exception would be a 500 in the API; count both outcomes to be sure."""
    rng = np.random.default_rng(0)
    seeds = {"csv": b"a,b,y\n1,2,0\n3,4,1\n", "json": b'{"X": [[1, 2], [3, 4]], "y": [0, 1]}',
             "npz": npz(X=np.ones((3, 2)), y=np.arange(3))}
    for fmt, seed in seeds.items():
        outcomes = {"parsed": 0, "refused": 0}
        for _ in range(300):
            data = bytearray(seed)
            for _ in range(int(rng.integers(1, 5))):
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
            try:
                parse_dataset(bytes(data), fmt)
                outcomes["parsed"] += 1
            except DatasetError:
                outcomes["refused"] += 1
        assert outcomes["refused"] > 0 and sum(outcomes.values()) == 300, (fmt, outcomes)


def test_a_wide_csv_allocates_by_its_rows_not_by_the_row_limit() -> None:
    """5,000 columns and 3 rows under the default limits: NumPy used to preallocate the row
    limit times the columns (37 GiB) and the API answered 500 (issue 19)."""
    header = ",".join(f"f{i}" for i in range(4999)) + ",y"
    rows = [",".join(str((r + i) % 7) for i in range(4999)) + f",{r % 2}" for r in range(3)]
    data = (header + "\n" + "\n".join(rows) + "\n").encode()
    ds = parse_dataset(data, "csv", limits=DatasetLimits())
    assert ds.X.shape == (3, 4999)
    assert ds.X[2, 10] == (2 + 10) % 7 and ds.y.tolist() == [0, 1, 0]


def test_the_careful_csv_path_stops_at_the_first_row_past_the_limit() -> None:
    """String labels take the row-by-row reader: it refuses the 4th row of 3 allowed before
    reading on (the rest of this file is not even CSV)."""
    data = b"a,y\n1,cat\n2,dog\n3,cat\n4,dog\n" + b'"unclosed\n' * 1000
    with pytest.raises(DatasetError, match="more than 3 rows: over the limit of 3"):
        parse_dataset(data, "csv", limits=SMALL)


def test_too_many_columns_are_refused_before_any_row_is_read() -> None:
    data = b"a,b,c,d,y\n" + b"not,numbers,at,all,x\n" * 10
    with pytest.raises(DatasetError, match="4 features exceed the limit of 3"):
        parse_dataset(data, "csv", limits=SMALL)


def test_careful_path_features_and_string_labels_are_read_row_by_row() -> None:
    ds = parse_dataset(b"a,b,label\n1,2.5,cat\n-3,4,dog\n5,6e1,cat\n", "csv", limits=SMALL)
    assert ds.X.tolist() == [[1.0, 2.5], [-3.0, 4.0], [5.0, 60.0]]
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [0, 1, 0]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_npz_integer_features_keep_their_dtype(dtype: str) -> None:
    """Image pixels stay in their own dtype: a quarter of float32's bytes for uint8."""
    info = np.iinfo(dtype)
    X = np.random.default_rng(0).integers(info.min, int(info.max) + 1, (6, 1, 4, 4))
    X = X.astype(dtype)
    ds = parse_dataset(npz_compressed(X=X, y=np.arange(6) % 2), "npz")
    assert ds.X.dtype == np.dtype(dtype)
    assert ds.X.tobytes() == X.tobytes()
    assert ds.X.nbytes * 4 == X.astype(np.float32).nbytes * np.dtype(dtype).itemsize


@pytest.mark.parametrize(("dtype", "values"), [
    ("int32", [[2**31 - 1, -5]]), ("int64", [[2**53 + 1, 0]]), ("uint32", [[7, 2**32 - 1]]),
    ("bool", [[True, False]])])
def test_npz_wider_integers_and_booleans_become_float64(dtype: str, values: Any) -> None:
    X = np.array(values * 3, dtype=dtype)
    ds = parse_dataset(npz(X=X, y=np.arange(3)), "npz")
    assert ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.X, X.astype(np.float64))


def test_digits_are_parsed_once_and_each_load_is_a_fresh_writable_copy() -> None:
    first, second = load_builtin("digits"), load_builtin("digits")
    assert np.array_equal(first.X, second.X) and np.array_equal(first.y, second.y)
    assert not np.shares_memory(first.X, second.X)
    first.X[0, 0] = -1.0  # a job may scale its own copy in place: the next one is untouched
    assert load_builtin("digits").X[0, 0] == second.X[0, 0] != -1.0
    # laid out as a fresh parse is (a view of the 65-column table): the same reductions
    assert first.X.strides == (65 * 4, 4) and first.X.shape == (1797, 64)
    assert load_builtin("digits_images").X.shape == (1797, 1, 8, 8)
