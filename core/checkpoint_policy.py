"""A job's checkpoint policy: which epochs it writes, which checkpoints it keeps, which is best.

The one owner of the rule (the spec's ``checkpoints`` section, :class:`CheckpointPolicy`):

- an epoch is written as "periodic" every ``every_epochs`` epochs, and as "best" when it is
  the run's new best by ``monitor`` (:func:`kinds_to_write`);
- of a job's checkpoints, :func:`kept` keeps the ``keep_last`` newest "periodic" ones, the
  ``keep_best`` best "best" ones by ``monitor`` (:func:`core.monitors.direction`), the newest
  "final" one (a resumed run's final replaces the earlier one) and every other kind
  ("imported" weights belong to no run);
- a job's best checkpoint (predict's default) is :func:`best`.

The worker reads it twice: to trim the checkpoints waiting in memory for a commit
(worker/epoch_buffer.py) and to prune the stored ones after the commit
(worker/store_ops.apply_policy, which hands the store the ids to delete). Each kind keeps the
first k of its checkpoints in an order that depends on the checkpoint alone, so keeping from
(what was kept before) plus (new ones) is keeping from all of them: trimming a batch early
never drops a checkpoint the store would keep (tests/worker/test_policy_agreement.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from core.monitors import score
from core.spec import CheckpointPolicy

PERIODIC, BEST, FINAL = "periodic", "best", "final"


class Weighed(Protocol):
    """What the policy reads of a checkpoint (a stored row or one waiting in memory)."""

    @property
    def epoch(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, Any] | None: ...


C = TypeVar("C", bound=Weighed)


def kinds_to_write(policy: CheckpointPolicy, epoch: int, is_best: bool) -> tuple[str, ...]:
    """The kinds epoch ``epoch`` (1-based) is written as; ``is_best``: the run's new best."""
    kinds: tuple[str, ...] = ()
    if policy.every_epochs > 0 and epoch % policy.every_epochs == 0 and policy.keep_last > 0:
        kinds += (PERIODIC,)
    if is_best and policy.keep_best > 0:
        kinds += (BEST,)
    return kinds


def kept(policy: CheckpointPolicy, checkpoints: Sequence[C]) -> list[C]:
    """The checkpoints the policy keeps, in the given order.

    ``checkpoints`` are one job's, oldest first (the order they were made): of two with the
    same epoch, the later one is the newer.
    """
    newest_first = sorted(range(len(checkpoints)),
                          key=lambda i: (checkpoints[i].epoch, i), reverse=True)
    keep: set[int] = set()
    for kind, count in ((PERIODIC, policy.keep_last), (FINAL, 1)):
        keep.update([i for i in newest_first if checkpoints[i].kind == kind][:max(count, 0)])
    best = [i for i in range(len(checkpoints)) if checkpoints[i].kind == BEST]
    keep.update(_ranked(policy.monitor, checkpoints, best)[:max(policy.keep_best, 0)])
    keep.update(i for i, c in enumerate(checkpoints) if c.kind not in (PERIODIC, BEST, FINAL))
    return [c for i, c in enumerate(checkpoints) if i in keep]


def best(policy: CheckpointPolicy, checkpoints: Sequence[C]) -> C | None:
    """The checkpoint (any kind) with the best value of the policy's ``monitor``; None when
    none has one (the caller falls back to the newest). ``checkpoints`` oldest first."""
    ranked = _ranked(policy.monitor, checkpoints, range(len(checkpoints)))
    if ranked and score(checkpoints[ranked[0]].metrics, policy.monitor) is not None:
        return checkpoints[ranked[0]]
    return None


def _ranked(monitor: str, checkpoints: Sequence[C], indices: Iterable[int]) -> list[int]:
    """``indices`` best first: by the monitored value (ties: the earlier epoch, as the run's
    best tracker decides), then those without a finite value, newest first."""
    def key(i: int) -> tuple[int, float, int, int]:
        value = score(checkpoints[i].metrics, monitor)
        if value is None:
            return (1, 0.0, -checkpoints[i].epoch, -i)
        return (0, value, checkpoints[i].epoch, i)

    return sorted(indices, key=key)
