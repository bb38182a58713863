from __future__ import annotations

import re
import time

from store.ids import ALPHABET, _encode, new_id, timestamp_ms, ulid


def test_ids_have_prefix_and_26_crockford_characters() -> None:
    ident = new_id("job")
    assert re.fullmatch(rf"job_[{ALPHABET}]{{26}}", ident)


def test_ids_made_in_a_row_sort_in_creation_order() -> None:
    made = [new_id("job") for _ in range(2000)]
    assert made == sorted(made)
    assert len(set(made)) == 2000


def test_time_part_decodes_to_the_creation_millisecond() -> None:
    before = int(time.time() * 1000)
    ident = new_id("ds")
    after = int(time.time() * 1000)
    assert before <= timestamp_ms(ident) <= after


def test_time_part_matches_the_ulid_spec_example() -> None:
    # ulid/javascript README: ulid(1469918176385) == "01ARYZ6S41TSV4RRFFQ69G5FAV".
    assert _encode(1469918176385, 10) == "01ARYZ6S41"
    assert timestamp_ms("job_01ARYZ6S41TSV4RRFFQ69G5FAV") == 1469918176385


def test_a_clock_that_steps_back_still_gives_increasing_ids() -> None:
    now = ulid()
    earlier = ulid(now_ms=1_000_000_000_000)
    assert earlier > now
    assert earlier[:10] == now[:10]
