"""Same seed, same bytes; and a resumed run equals the uninterrupted one, bit for bit.

The resume runs in a FRESH Python process, so nothing but the checkpoint bytes (and the same
spec and data) carries the state across: no module-level cache, no leftover Generator.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.checkpoint import TrainingState, load_state
from core.training import EpochReport, train

EPOCHS = 6


def spec(**training: Any) -> dict[str, Any]:
    """Dropout, shuffling, a step schedule and early stopping: every piece of state in play."""
    return {
        "name": "det",
        "model": {"layers": [
            {"type": "dense", "units": 32, "activation": "relu"},
            {"type": "dropout", "rate": 0.3},
            {"type": "dense", "units": 16, "activation": "tanh"},
            {"type": "dense", "units": 3}]},
        "loss": {"type": "cross_entropy", "label_smoothing": 0.1},
        "optimizer": {"type": "adam", "learning_rate": 0.01, "weight_decay": 1e-4},
        "regularization": {"l1": 1e-5, "l2": 1e-4},
        "training": {
            "epochs": EPOCHS, "batch_size": 10, "shuffle": True, "seed": 5,
            "validation_split": 0.2, "standardize": True, "clip_grad_norm": 5.0,
            "lr_schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
            "early_stopping": {"monitor": "val_loss", "patience": 100, "restore_best": True},
            **training},
    }


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.standard_normal((95, 6)), rng.integers(0, 3, 95)


def without_seconds(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def assert_same_state(a: TrainingState, b: TrainingState) -> None:
    assert a.epoch == b.epoch
    assert without_seconds(a.history) == without_seconds(b.history)
    assert sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert a.params[name].tobytes() == b.params[name].tobytes(), name
    assert sorted(a.optimizer) == sorted(b.optimizer)
    for key, value in a.optimizer.items():
        other = b.optimizer[key]
        same = (np.asarray(value).tobytes() == np.asarray(other).tobytes()
                if isinstance(value, np.ndarray) else value == other)
        assert same, key
    assert a.scheduler == b.scheduler
    assert a.early_stopping == b.early_stopping
    assert a.rng == b.rng and a.shuffle_rng == b.shuffle_rng
    assert a.best_epoch == b.best_epoch and a.best_value == b.best_value
    assert (a.best_params is None) == (b.best_params is None)
    for name in a.best_params or {}:
        assert a.best_params[name].tobytes() == b.best_params[name].tobytes()  # type: ignore


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    X, y = data()
    a, b = train(spec(), X, y), train(spec(), X, y)
    assert a.network.flat_params.tobytes() == b.network.flat_params.tobytes()
    assert np.array_equal(a.network.flat_params, b.network.flat_params)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert a.weights_npz() == b.weights_npz()
    c = train(spec(seed=6), X, y)
    assert not np.array_equal(a.network.flat_params, c.network.flat_params)


RESUME_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from tests.core.test_determinism import data
    from core.training import train

    spec = json.loads(sys.argv[1])
    X, y = data()
    result = train(spec, X, y, resume=Path(sys.argv[2]).read_bytes())
    Path(sys.argv[3]).write_bytes(result.checkpoint())
    print(result.stop_reason, len(result.history))
""")


def resume_in_fresh_process(tmp_path: Path, run_spec: dict[str, Any], blob: bytes) -> bytes:
    src, out = tmp_path / "in.npz", tmp_path / "out.npz"
    src.write_bytes(blob)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", RESUME_SCRIPT, json.dumps(run_spec), str(src), str(out)],
        cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["epochs_done", str(EPOCHS)]
    return out.read_bytes()


def test_resume_at_an_epoch_boundary_in_a_fresh_process_is_bitwise_identical(
        tmp_path: Path) -> None:
    X, y = data()
    saved: dict[int, bytes] = {}

    def keep(report: EpochReport) -> None:
        saved[report.epoch] = report.checkpoint()

    full = train(spec(), X, y, on_epoch=keep)
    assert full.stop_reason == "epochs_done"
    resumed = load_state(resume_in_fresh_process(tmp_path, spec(), saved[3]))
    assert_same_state(full.state, resumed)
    assert resumed.final_params is not None or full.state.final_params is None
    # the lr really changed across the cut, so the schedule state mattered
    assert [h["lr"] for h in full.history] == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]


@pytest.mark.parametrize("cut", [1, 13])
def test_resume_after_a_mid_epoch_cancel_is_bitwise_identical(tmp_path: Path, cut: int) -> None:
    X, y = data()
    full = train(spec(), X, y)
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) == cut

    stopped = train(spec(), X, y, should_stop=should_stop)
    assert stopped.stop_reason == "cancelled"
    assert stopped.state.partial is not None
    assert stopped.state.partial["batch"] == (cut - 1) % 8
    resumed = load_state(resume_in_fresh_process(tmp_path, spec(), stopped.checkpoint()))
    assert_same_state(full.state, resumed)


def test_nadam_resume_after_a_mid_epoch_cancel_is_bitwise_identical(tmp_path: Path) -> None:
    """NAdam's per-parameter float32 mu_product travels in the checkpoint beside its moments."""
    nadam = {**spec(dtype="float64"), "optimizer": {
        "type": "nadam", "learning_rate": 0.01, "weight_decay": 1e-3,
        "decoupled_weight_decay": True}}
    X, y = data()
    full = train(nadam, X, y)
    mu_product = full.state.optimizer["mu_product/all"]
    assert isinstance(mu_product, np.ndarray) and mu_product.dtype == np.float32
    assert 0.0 < float(mu_product) < 1.0
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) == 13

    stopped = train(nadam, X, y, should_stop=should_stop)
    assert stopped.stop_reason == "cancelled"
    resumed = load_state(resume_in_fresh_process(tmp_path, nadam, stopped.checkpoint()))
    assert_same_state(full.state, resumed)
    assert resumed.optimizer["mu_product/all"].tobytes() == mu_product.tobytes()
