"""core.sweeps.asha: the rungs and the promotion rule against a hand-worked table."""

from __future__ import annotations

import math

import pytest

from core.sweeps.asha import RungResult, continues, rungs


def test_rungs_stop_below_the_last_epoch() -> None:
    assert rungs(1, 3, 27) == (1, 3, 9)
    assert rungs(1, 3, 28) == (1, 3, 9, 27)
    assert rungs(2, 2, 16) == (2, 4, 8)
    assert rungs(5, 3, 5) == ()


# η = 3, mode max. Worked by hand: n trials have reported the rung (this one included);
# the top ceil(n / 3) continue; ties go to the lower trial index; NaN is last.
TABLE = [
    # seq, trial, rung, value, continues
    (1, 0, 1, 0.50, True),          # n=1, keep 1: alone, first
    (2, 1, 1, 0.40, False),         # n=2, keep 1: 0.50 (t0) is ahead
    (3, 2, 1, 0.60, True),          # n=3, keep 1: best so far
    (4, 3, 1, 0.55, True),          # n=4, keep 2: 0.60, 0.55
    (5, 4, 1, 0.52, False),         # n=5, keep 2: 0.60, 0.55 ahead
    (6, 5, 1, 0.55, False),         # n=6, keep 2: ties 0.55 with t3, which has the lower index
    (7, 6, 1, math.nan, False),     # n=7, keep 3: NaN ranks last
    (8, 0, 3, 0.70, True),          # rung 3, n=1
    (9, 2, 3, 0.65, False),         # rung 3, n=2, keep 1
    (10, 3, 3, 0.71, True),         # rung 3, n=3, keep 1: best
    (11, 7, 1, 0.99, True),         # rung 1, n=8, keep 3: best
]


def rows() -> list[RungResult]:
    return [RungResult(seq, trial, rung, value) for seq, trial, rung, value, _ in TABLE]


@pytest.mark.parametrize("row", range(len(TABLE)))
def test_each_decision_of_the_hand_worked_table(row: int) -> None:
    table = rows()
    assert continues(table, table[row], "max", 3) is TABLE[row][4]


def test_a_decision_reads_only_the_rows_reported_before_it() -> None:
    table = rows()
    # t3 continued at seq 4 although t7's 0.99 later pushed it out of the top 3 of 8
    assert continues(table, table[3], "max", 3) is True
    assert continues(table[:4], table[3], "max", 3) is True


def test_mode_min_ranks_the_lowest_first() -> None:
    table = rows()
    assert continues(table, table[1], "min", 3) is True     # 0.40 beats 0.50
    assert continues(table, table[2], "min", 3) is False    # 0.60 is last of three


def test_reduction_factor_two_keeps_half() -> None:
    table = [RungResult(i + 1, i, 2, v) for i, v in enumerate([0.1, 0.4, 0.3, 0.2])]
    assert [continues(table, r, "max", 2) for r in table] == [True, True, True, False]
