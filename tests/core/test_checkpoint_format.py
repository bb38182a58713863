"""docs/checkpoint-format.md names every entry a real checkpoint and weights.npz contain."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from core.datasets import load_builtin
from core.training import TrainResult, train

DOC = (Path(__file__).parents[2] / "docs" / "checkpoint-format.md").read_text()
SPEC = {
    "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"},
                         {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 2}]},
    "optimizer": {"type": "adam"},
    "training": {"epochs": 3, "batch_size": 2, "validation_split": 0.5,
                 "early_stopping": {"patience": 1, "restore_best": True}},
}


@pytest.fixture(scope="module")
def result() -> TrainResult:
    data = load_builtin("noisy_xor")
    return train(SPEC, data.X, data.y)


def arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def row(entry: str) -> str:
    """The documented table row of ``entry``."""
    (line,) = [line for line in DOC.splitlines() if line.startswith(f"| `{entry}`")]
    return line


def test_weights_npz_is_exactly_the_documented_entries(result: TrainResult) -> None:
    w = arrays(result.weights_npz())
    assert set(w) == {"0.weight", "0.bias", "2.weight", "2.bias", "__spec__",
                      "__input_mean__", "__input_std__"}
    assert w["0.weight"].shape == (2, 8) and w["2.weight"].shape == (8, 2)  # (fan_in, units)
    assert json.loads(str(w["__spec__"][()]))["layers"][1]["type"] == "dropout"
    for name in ("__spec__", "__input_mean__"):
        assert f"`{name}`" in DOC


def test_the_internal_checkpoint_has_only_documented_entries(result: TrainResult) -> None:
    c = arrays(result.checkpoint())
    public = set(arrays(result.weights_npz()))
    documented = ("__state__", "__history__", "__optim__/", "__best__/", "__resume__/")
    extra = {name for name in c if name not in public}
    assert extra and all(name.startswith(documented) for name in extra), extra
    assert any(name.startswith("__optim__/exp_avg/") for name in extra)


def test_state_keys_are_the_documented_ones(result: TrainResult) -> None:
    state = json.loads(str(arrays(result.checkpoint())["__state__"][()]))
    described = set(re.findall(r"`(\w+)`", row("__state__").split("|")[3]))
    assert set(state) <= described, set(state) - described
    assert state["format_version"] == 3 and "format_version` (3)" in row("__state__")


def test_history_is_utf8_json_with_the_documented_metrics(result: TrainResult) -> None:
    history = arrays(result.checkpoint())["__history__"]
    assert history.dtype == np.uint8 and history.ndim == 1
    entries = json.loads(history.tobytes().decode("utf-8"))
    described = set(re.findall(r'"(\w+)"', row("__history__")))
    assert entries and all(set(entry) <= described for entry in entries), entries[0]


def test_classes_are_the_documented_plain_array(result: TrainResult) -> None:
    from core.checkpoint import export_weights_npz

    assert "__classes__" not in arrays(result.weights_npz())  # core knows no labels itself
    w = arrays(export_weights_npz(result.network, classes=["no", "yes"]))
    assert w["__classes__"].dtype.kind == "U" and w["__classes__"].shape == (2,)
    w = arrays(export_weights_npz(result.network, classes=[0, 1]))
    assert w["__classes__"].dtype == np.int64
    assert "`int64`" in row("__classes__") and "unicode" in row("__classes__")
