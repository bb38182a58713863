"""ASHA's rung rule (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
MLSys 2020), as a pure function of the rung results table.

Rungs sit at ``grace_epochs * reduction_factor**k`` epochs, for every k that stays below the
trial's ``epochs`` (a trial that reaches its last epoch simply ends). When a trial reports a
rung, it continues only if it is among the top ``ceil(n / reduction_factor)`` of the n trials
that have reported that rung so far, itself included (the stopping form of asynchronous
successive halving, as Ray Tune's ASHA: a trial is never paused, so the first trial of a rung
always continues). Ranking uses the metric's value at the rung's epoch, best first by
``mode``; ties go to the lower trial index; NaN ranks last. "So far" is the table's report
order (``seq``): the decision is made once, when the trial reports, and never revisited.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RungResult:
    """One row of the rung table: trial ``trial`` reported ``value`` at epoch ``rung``."""

    seq: int
    trial: int
    rung: int
    value: float


def rungs(grace_epochs: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs at which a trial of ``epochs`` epochs is judged."""
    out: list[int] = []
    rung = grace_epochs
    while rung < epochs:
        out.append(rung)
        rung *= reduction_factor
    return tuple(out)


def continues(results: Iterable[RungResult], reported: RungResult, mode: str,
              reduction_factor: int) -> bool:
    """Whether the trial that made the ``reported`` row goes on past its rung."""
    peers = [r for r in results if r.rung == reported.rung and r.seq <= reported.seq]
    if reported not in peers:
        peers.append(reported)
    sign = -1.0 if mode == "max" else 1.0

    def rank_key(r: RungResult) -> tuple[bool, float, int]:
        return (math.isnan(r.value), sign * r.value if not math.isnan(r.value) else 0.0, r.trial)

    ranked = sorted(peers, key=rank_key)
    keep = math.ceil(len(ranked) / reduction_factor)
    return reported in ranked[:keep]
