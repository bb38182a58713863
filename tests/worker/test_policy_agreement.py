"""The worker's in-memory trimming and the store's pruning keep the same checkpoints.

Both read core.checkpoint_policy.kept; this checks the property that makes trimming early
safe: a run committed at any points (as the runner commits: once ``commit_interval_s`` has
passed) ends with, and after every commit holds, exactly the checkpoints the policy keeps of
every checkpoint the run would have written had nothing been trimmed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.checkpoint_policy import FINAL, kept, kinds_to_write
from core.monitors import MONITORS
from core.spec import CheckpointPolicy
from tests.worker.conftest import Backend, create_job, kept_checkpoints, xor_spec
from tests.worker.fakes import FakeReport
from worker.epoch_buffer import EpochBuffer

COMMIT_INTERVAL_S = 1.0
VALUES = st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.9, math.nan, math.inf])


@dataclass(frozen=True)
class Written:
    epoch: int
    kind: str
    metrics: dict[str, float]


policies = st.builds(CheckpointPolicy, every_epochs=st.integers(1, 3),
                     keep_last=st.integers(1, 4), keep_best=st.integers(0, 3),
                     monitor=st.sampled_from(MONITORS))
epochs = st.lists(
    st.tuples(
        st.fixed_dictionaries({"loss": VALUES}, optional={
            "val_loss": VALUES, "accuracy": VALUES, "val_accuracy": VALUES}),
        st.booleans(),  # is_best: arbitrary, so ranking by value is what must agree
        # The epoch's length in units of the run's base length: within the 2x margin the
        # buffer assumes when it skips copying a periodic checkpoint (EpochBuffer docs).
        st.floats(1.0, 1.9),
    ),
    min_size=1, max_size=25,
)


def expected(policy: CheckpointPolicy, written: list[Written]) -> list[tuple[str, int]]:
    return sorted((c.kind, c.epoch) for c in kept(policy, written))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=policies, run=epochs, base_s=st.sampled_from([0.01, 0.1, 0.3, 2.0]))
def test_trimming_and_pruning_keep_what_the_policy_keeps_of_everything(
    sqlite_backend: Backend, policy: CheckpointPolicy,
    run: list[tuple[dict[str, float], bool, float]], base_s: float,
) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(), cap=1_000_000)  # every example adds a queued job
    buffer = EpochBuffer(job_id, policy, commit_interval_s=COMMIT_INTERVAL_S)
    written: list[Written] = []  # what a run without trimming would write, in order
    since_commit, n = 0.0, len(run)
    for epoch, (values, is_best, factor) in enumerate(run, start=1):
        metrics: dict[str, Any] = {**values, "seconds": base_s * factor}
        since_commit += base_s * factor
        due = since_commit >= COMMIT_INTERVAL_S
        buffer.add(FakeReport(epoch, n, metrics, is_best, f"e{epoch}".encode()),
                   since_commit=since_commit, committing=due)
        written += [Written(epoch, kind, metrics)
                    for kind in kinds_to_write(policy, epoch, is_best)]
        if due:
            with b.sessions.begin() as s:
                buffer.flush(s)
            since_commit = 0.0
            assert kept_checkpoints(b, job_id) == expected(policy, written)
    final_metrics = dict(run[-1][0])
    with b.sessions.begin() as s:
        buffer.flush(s, (n, b"final", final_metrics))
    written.append(Written(n, FINAL, final_metrics))
    assert kept_checkpoints(b, job_id) == expected(policy, written)
