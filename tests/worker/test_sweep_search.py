"""worker.sweep_search: TPE through Optuna is a pure function of (space, seed, index, history)."""

from __future__ import annotations

from typing import Any

from core.spec import Spec
from core.sweeps import SearchSpace, random_point
from worker.sweep_search import Observation, tpe_point

BASE: dict[str, Any] = {
    "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam", "learning_rate": 0.01},
    "training": {"epochs": 9, "validation_split": 0.2},
}
SPACE = SearchSpace.from_dict({
    "optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
    "model.layers[0].units": {"choice": [32, 64, 128]},
    "training.batch_size": {"int_uniform": [16, 128]},
    "optimizer.momentum": {"uniform": [0.0, 0.99], "when": {"optimizer.type": "sgd"}},
    "optimizer.type": {"choice": ["sgd", "adam"]},
}, Spec.from_dict(BASE).to_dict())


def history(n: int) -> list[Observation]:
    """n finished trials: accuracy peaks near lr 1e-2; every fourth pruned, every ninth failed."""
    out = []
    for i in range(n):
        params = random_point(SPACE, 3, i)
        value = 1.0 - abs(params["optimizer.learning_rate"] - 1e-2) * 5
        if i % 9 == 8:
            out.append(Observation(params, "failed"))
        elif i % 4 == 3:
            out.append(Observation(params, "pruned", intermediate={1: value - 0.3}))
        else:
            out.append(Observation(params, "complete", value, {1: value - 0.2}))
    return out


def test_tpe_is_deterministic_for_a_fixed_history() -> None:
    past = history(24)
    first = [tpe_point(SPACE, 7, 24 + i, "max", past) for i in range(3)]
    assert first == [tpe_point(SPACE, 7, 24 + i, "max", past) for i in range(3)]
    assert first[0] != first[1]  # the index seeds the ask
    assert tpe_point(SPACE, 8, 24, "max", past) != first[0]


def test_tpe_points_respect_the_space() -> None:
    past = history(24)
    for i in range(6):
        point = tpe_point(SPACE, 7, 24 + i, "max", past)
        assert point["model.layers[0].units"] in (32, 64, 128)
        assert 1e-4 <= point["optimizer.learning_rate"] <= 1e-1
        assert isinstance(point["training.batch_size"], int)
        assert ("optimizer.momentum" in point) == (point["optimizer.type"] == "sgd")
        Spec.from_dict(SPACE.apply(BASE, point))


def test_tpe_reads_the_history() -> None:
    # after its startup trials TPE moves towards the good region; with no history it cannot
    past = history(30)
    near = [abs(tpe_point(SPACE, 7, 30 + i, "max", past)["optimizer.learning_rate"] - 1e-2)
            for i in range(8)]
    blind = [abs(tpe_point(SPACE, 7, 30 + i, "max", [])["optimizer.learning_rate"] - 1e-2)
             for i in range(8)]
    assert sorted(near)[4] < sorted(blind)[4]
