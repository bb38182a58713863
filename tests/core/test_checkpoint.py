"""Checkpoint bytes: the public weights.npz, the internal state, loading, weight statistics."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.checkpoint import (
    dump_checkpoint,
    export_weights_npz,
    load_checkpoint,
    load_state,
    weight_stats,
)
from core.errors import CheckpointError
from core.network import build_network
from core.preprocessing import Preprocessing
from core.training import train

LAYERS: list[dict[str, Any]] = [
    {"type": "dense", "units": 8, "activation": "relu"},
    {"type": "batch_norm"},
    {"type": "dropout", "rate": 0.5},
    {"type": "dense", "units": 3},
]
SPEC: dict[str, Any] = {
    "name": "ckpt", "model": {"layers": LAYERS},
    "loss": {"type": "cross_entropy"}, "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 2, "batch_size": 16, "validation_split": 0.2,
                 "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best": True}},
}


def data(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 5)) + 2.0, rng.integers(0, 3, n)


def npz(data_bytes: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data_bytes), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_weights_npz_holds_exactly_the_design_arrays() -> None:
    X, y = data()
    result = train(SPEC, X, y)
    arrays = npz(result.weights_npz())
    assert sorted(arrays) == sorted([
        "0.weight", "0.bias", "1.gamma", "1.beta", "1.running_mean", "1.running_var",
        "3.weight", "3.bias", "__spec__", "__input_mean__", "__input_std__"])
    assert arrays["0.weight"].shape == (5, 8) and arrays["3.weight"].shape == (8, 3)
    spec = arrays["__spec__"]
    assert spec.ndim == 0 and spec.dtype.kind == "U"
    assert [layer["type"] for layer in json.loads(str(spec))["layers"]] == [
        "dense", "batch_norm", "dropout", "dense"]
    np.testing.assert_array_equal(arrays["__input_mean__"], result.network.preprocessing.mean)
    # NumPy-only inference as docs/checkpoint-format.md promises (dense, batch norm in eval
    # mode, dense)
    x = (X[:4] - arrays["__input_mean__"]) / arrays["__input_std__"]
    h = np.maximum(x @ arrays["0.weight"] + arrays["0.bias"], 0.0)
    h = (h - arrays["1.running_mean"]) / np.sqrt(arrays["1.running_var"] + 1e-5)
    logits = (h * arrays["1.gamma"] + arrays["1.beta"]) @ arrays["3.weight"] + arrays["3.bias"]
    np.testing.assert_allclose(logits, result.network.forward(
        result.network.preprocessing.apply(X[:4]), training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("classes", "dtype_kind"), [
    (["cat", "dog", "émeu"], "U"), ([3, 5, 7], "i")])
def test_weights_npz_records_the_class_labels_as_a_plain_array(
    classes: list[Any], dtype_kind: str
) -> None:
    X, y = data()
    network = train(SPEC, X, y).network
    assert "__classes__" not in npz(export_weights_npz(network))  # none known: none written
    arrays = npz(export_weights_npz(network, classes=classes))  # read without pickle
    labels = arrays["__classes__"]
    assert labels.dtype.kind == dtype_kind and labels.tolist() == classes
    logits = network.forward(network.preprocessing.apply(X[:5]), training=False)
    assert labels[logits.argmax(axis=1)].tolist() == [classes[i] for i in logits.argmax(1)]
    # A loaded weights.npz keeps its labels, and exports them again.
    loaded = load_checkpoint(export_weights_npz(network, classes=classes), loss="cross_entropy")
    assert loaded.classes == classes
    assert npz(export_weights_npz(loaded))["__classes__"].tolist() == classes
    # Labels that do not name every output unit (3 units here) are not written.
    assert "__classes__" not in npz(export_weights_npz(network, classes=classes[:2]))


def test_no_member_of_a_checkpoint_is_pickled() -> None:
    X, y = data()
    result = train(SPEC, X, y)
    for blob in (result.weights_npz(), result.checkpoint()):
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            for name in z.namelist():
                header = z.read(name)[:128]
                assert b"'O'" not in header and b"|O" not in header, name


def test_load_checkpoint_predicts_like_the_trained_network(tmp_path: Path) -> None:
    X, y = data()
    result = train(SPEC, X, y)
    expected = result.network.predict(X)
    internal = load_checkpoint(result.checkpoint())
    np.testing.assert_array_equal(internal.predict(X), expected)
    path = tmp_path / "weights.npz"
    path.write_bytes(result.weights_npz())
    public = load_checkpoint(path, loss="cross_entropy")
    np.testing.assert_array_equal(public.predict(X), expected)
    np.testing.assert_allclose(public.predict(X).sum(axis=1), 1.0, rtol=1e-6)
    raw = load_checkpoint(str(path))  # no loss recorded: raw outputs
    logits = raw.predict(X)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True),
                               expected, rtol=1e-5)


def test_load_checkpoint_leaves_the_training_state_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Predict needs the weights, spec and preprocessing: the optimizer's moments, the best and
    resume copies and the history are never decompressed (most of an Adam checkpoint)."""
    X, y = data()
    blob = train(SPEC, X, y).checkpoint()
    names = set(npz(blob))
    assert {n.split("/")[0] + "/" for n in names if "/" in n} == {"__optim__/", "__best__/"}
    read: list[str] = []
    original = np.lib.npyio.NpzFile.__getitem__

    def recording(self: Any, key: str) -> Any:
        read.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", recording)
    load_checkpoint(blob)
    assert read and not [n for n in read if n.startswith(
        ("__optim__/", "__best__/", "__resume__/", "__history__"))]
    assert set(read) == {n for n in names if "/" not in n and n != "__history__"}


def test_internal_state_round_trips_exactly() -> None:
    X, y = data()
    captured: list[bytes] = []
    train(SPEC, X, y, on_epoch=lambda r: captured.append(r.checkpoint()))
    state = load_state(captured[-1])
    assert state.epoch == 2 and len(state.history) == 2
    assert state.loss == "cross_entropy" and state.dtype == "float32"
    assert state.input_shape == (5,)
    assert state.spec["training"]["epochs"] == 2
    assert state.optimizer["step"] == 2 * 3  # 48 training rows, batches of 16
    assert state.optimizer["exp_avg/all"].dtype == np.float32
    assert state.early_stopping is not None and state.early_stopping["wait"] in (0, 1)
    assert state.best_params is not None and "1.running_var" in state.best_params
    again = load_state(dump_checkpoint(state))
    assert again.history == state.history
    assert again.rng == state.rng and again.shuffle_rng == state.shuffle_rng
    for key, value in state.optimizer.items():
        if isinstance(value, np.ndarray):
            assert value.tobytes() == again.optimizer[key].tobytes()
        else:
            assert value == again.optimizer[key]
    for name, value in state.params.items():
        assert value.tobytes() == again.params[name].tobytes()


def test_final_checkpoint_shows_restored_weights_but_resumes_from_the_last() -> None:
    X, y = data()
    spec = json.loads(json.dumps(SPEC))
    spec["training"]["epochs"] = 1
    first = train(spec, X, y)
    state = load_state(first.checkpoint())
    assert state.final_params is None  # nothing restored after a single epoch
    state.final_params = {k: np.zeros_like(v) for k, v in state.params.items()}
    blob = dump_checkpoint(state)
    assert float(np.abs(npz(blob)["0.weight"]).sum()) == 0.0
    back = load_state(blob)
    np.testing.assert_array_equal(back.params["0.weight"], state.params["0.weight"])
    assert back.final_params is not None


def test_weights_only_npz_cannot_be_resumed() -> None:
    X, y = data()
    with pytest.raises(CheckpointError, match="no training state"):
        load_state(train(SPEC, X, y).weights_npz())


def test_unreadable_or_pickled_input_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError):
        load_checkpoint(b"not a zip file")
    buffer = io.BytesIO()
    np.savez(buffer, **{"__spec__": np.array('{"layers": []}'),
                        "0.weight": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(CheckpointError):
        load_checkpoint(buffer.getvalue())
    with pytest.raises(CheckpointError, match="__spec__"):
        load_checkpoint(dump_npz({"0.weight": np.zeros((2, 2))}))


def dump_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_weights_that_do_not_fit_the_spec_are_refused() -> None:
    net = build_network({"layers": [{"type": "dense", "units": 2}]}, (3,), seed=0)
    arrays = npz(export_weights_npz(net))
    arrays["0.weight"] = np.zeros((3, 5), np.float32)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(dump_npz(arrays))


def test_cnn_input_shape_is_inferred_from_weights_npz() -> None:
    layers = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
              {"type": "max_pool2d", "pool_size": 2}, {"type": "flatten"},
              {"type": "dense", "units": 2}]
    net = build_network({"layers": layers}, (2, 6, 6), seed=1)
    back = load_checkpoint(export_weights_npz(net), loss="cross_entropy")
    assert back.input_shape == (2, 6, 6)
    x = np.random.default_rng(0).standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_weight_stats_are_computed_in_float64() -> None:
    net = build_network({"layers": [{"type": "dense", "units": 2}]}, (2,), seed=0)
    net.set_params({"0.weight": np.array([[1.0, -1.0], [3.0, 5.0]]),
                    "0.bias": np.array([0.0, 0.0])})
    net.preprocessing = Preprocessing(np.zeros(2, np.float32), np.ones(2, np.float32))
    stats = {s["name"]: s for s in weight_stats(net)}
    w = stats["0.weight"]
    assert w["shape"] == [2, 2]
    assert w["mean"] == 2.0 and w["min"] == -1.0 and w["max"] == 5.0
    assert w["std"] == pytest.approx(np.sqrt(5.0), rel=1e-15)
    assert w["frobenius"] == pytest.approx(6.0, rel=1e-15)
    assert stats["0.bias"]["frobenius"] == 0.0


def test_images_without_a_channel_axis_round_trip_through_weights_npz() -> None:
    rng = np.random.default_rng(3)
    X, y = rng.random((40, 6, 6)), rng.integers(0, 2, 40)
    layers = [{"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
              {"type": "flatten"}, {"type": "dense", "units": 2}]
    spec = {**SPEC, "model": {"layers": layers}}
    result = train(spec, X, y)
    arrays = npz(result.weights_npz())
    assert arrays["__input_mean__"].shape == (1, 6, 6)
    back = load_checkpoint(result.weights_npz(), loss="cross_entropy")
    assert back.input_shape == (1, 6, 6)
    np.testing.assert_array_equal(back.predict(X), result.network.predict(X))
    np.testing.assert_array_equal(back.predict(X[:, None]), result.network.predict(X))


def test_history_has_its_own_array_encoded_as_the_run_goes() -> None:
    X, y = data()
    spec = {**SPEC, "training": {**SPEC["training"], "epochs": 4}}
    captured: list[bytes] = []
    result = train(spec, X, y, on_epoch=lambda r: captured.append(r.checkpoint()))
    arrays = npz(captured[-1])
    meta = json.loads(str(arrays["__state__"][()]))
    assert meta["format_version"] == 3 and "history" not in meta
    # The run's incremental encoding is exactly what encoding the whole list gives, as bytes.
    assert arrays["__history__"].dtype == np.uint8
    assert arrays["__history__"].tobytes() == json.dumps(result.history, sort_keys=True).encode()
    assert [len(load_state(c).history) for c in captured] == [1, 2, 3, 4]
    state = load_state(captured[-1])
    state.history_json = None  # a state not from a run: encoded on demand, the same bytes
    assert dump_checkpoint(state) == captured[-1]


def test_format_2_checkpoints_with_a_unicode_history_still_load() -> None:
    X, y = data()
    captured: list[bytes] = []
    train(SPEC, X, y, on_epoch=lambda r: captured.append(r.checkpoint()))
    arrays = npz(captured[-1])
    text = arrays["__history__"].tobytes().decode()
    arrays["__history__"] = np.array(text)  # format 2: a 0-d unicode array
    meta = json.loads(str(arrays["__state__"][()]))
    arrays["__state__"] = np.array(json.dumps({**meta, "format_version": 2}, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    assert load_state(buffer.getvalue()).history == load_state(captured[-1]).history
    arrays["__history__"] = np.frombuffer(b"[\xff", dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(CheckpointError, match="__history__"):
        load_state(buffer.getvalue())


def test_format_1_checkpoints_with_the_history_in_the_state_still_load() -> None:
    X, y = data()
    captured: list[bytes] = []
    train(SPEC, X, y, on_epoch=lambda r: captured.append(r.checkpoint()))
    arrays = npz(captured[-1])
    history = json.loads(arrays.pop("__history__").tobytes())
    meta = json.loads(str(arrays["__state__"][()]))
    arrays["__state__"] = np.array(json.dumps({**meta, "format_version": 1,
                                               "history": history}, sort_keys=True))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    old = load_state(buffer.getvalue())
    assert old.history == history == load_state(captured[-1]).history
    assert old.epoch == 2


def test_a_deferred_checkpoint_serialises_later_to_the_bytes_of_its_epoch() -> None:
    X, y = data()
    spec = {**SPEC, "training": {**SPEC["training"], "epochs": 3}}
    now: list[bytes] = []
    later: list[Any] = []

    def on_epoch(report: Any) -> None:
        now.append(report.checkpoint())
        later.append(report.deferred_checkpoint())

    train(spec, X, y, on_epoch=on_epoch)
    assert [serialise() for serialise in later] == now  # after training moved on
    assert len(set(now)) == 3
