"""core.checkpoint_policy: which epochs are written, which checkpoints kept, which is best."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.checkpoint_policy import best, kept, kinds_to_write
from core.spec import CheckpointPolicy


@dataclass(frozen=True)
class C:
    epoch: int
    kind: str
    metrics: dict[str, Any] = field(default_factory=dict)


def run(losses: list[float], kind: str = "periodic") -> list[C]:
    """One checkpoint per epoch (1-based) with these val_loss values."""
    return [C(e, kind, {"val_loss": v, "val_accuracy": 1 - v})
            for e, v in enumerate(losses, start=1)]


def epochs(cs: list[C]) -> list[tuple[int, str]]:
    return [(c.epoch, c.kind) for c in cs]


def test_kinds_to_write_follow_every_epochs_and_the_new_best() -> None:
    policy = CheckpointPolicy(every_epochs=2, keep_last=1, keep_best=1)
    assert [kinds_to_write(policy, e, e == 3) for e in (1, 2, 3, 4)] == [
        (), ("periodic",), ("best",), ("periodic",)]
    assert kinds_to_write(CheckpointPolicy(keep_best=0), 1, True) == ("periodic",)


def test_keeps_the_newest_periodic_and_the_best_best_and_one_final() -> None:
    policy = CheckpointPolicy(keep_last=2, keep_best=2, monitor="val_loss")
    cs = [*run([0.9, 0.2, 0.5, 0.1, 0.6, 0.7, 0.8]), *run([0.9, 0.2, 0.5, 0.1], "best"),
          C(3, "final"), C(7, "final"), C(0, "imported")]
    # periodic 6 and 7; best 4 (0.1) and 2 (0.2); the newest final; imports always.
    assert epochs(kept(policy, cs)) == [(6, "periodic"), (7, "periodic"), (2, "best"),
                                        (4, "best"), (7, "final"), (0, "imported")]


def test_an_accuracy_is_maximised_and_ties_go_to_the_earlier_epoch() -> None:
    policy = CheckpointPolicy(keep_last=1, keep_best=1, monitor="val_accuracy")
    assert epochs(kept(policy, run([0.9, 0.2, 0.5, 0.2], "best"))) == [(2, "best")]


def test_best_without_the_monitored_value_falls_back_to_loss_then_newest() -> None:
    policy = CheckpointPolicy(keep_last=1, keep_best=1, monitor="val_loss")
    no_val = [C(1, "best", {"loss": 0.3}), C(2, "best", {"loss": 0.1}), C(3, "best", {})]
    assert epochs(kept(policy, no_val)) == [(2, "best")]
    unscored = [C(1, "best", {"val_loss": math.nan}), C(2, "best", {"val_loss": None}),
                C(3, "best", {"val_loss": math.inf})]
    assert epochs(kept(policy, unscored)) == [(3, "best")]


def test_the_later_of_two_checkpoints_of_one_epoch_is_the_newer() -> None:
    policy = CheckpointPolicy(keep_last=1, keep_best=0)
    first, second = C(5, "periodic", {"n": 1}), C(5, "periodic", {"n": 2})
    assert kept(policy, [first, second]) == [second]


def test_best_is_the_best_scored_checkpoint_of_any_kind_else_none() -> None:
    policy = CheckpointPolicy(monitor="val_loss")
    cs = [*run([0.9, 0.2, 0.5]), C(3, "final", {"val_loss": 0.5})]
    assert best(policy, cs) == cs[1]
    assert best(CheckpointPolicy(monitor="val_accuracy"), cs) == cs[1]
    assert best(policy, [C(1, "final", {"loss": math.nan})]) is None
    assert best(policy, []) is None
