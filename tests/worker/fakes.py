"""A stand-in for core.train in the runner's unit tests (the process tests use the real core).

It keeps core.train's contract (docs/architecture.md): ``should_stop`` polled before every
batch, ``on_epoch`` after every epoch with a report whose ``checkpoint()`` is enough to resume
exactly, and a result with ``stop_reason``, ``history``, ``state.epoch``, ``weights_metrics``
and ``checkpoint()``. Its checkpoint is the text ``"fake:<epoch>:<batch>"``, so a test can read
where a run stopped and where a resume started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeReport:
    epoch: int
    epochs: int
    metrics: dict[str, float]
    is_best: bool
    blob: bytes
    serialised: list[int] = field(default_factory=list)
    copied: list[int] = field(default_factory=list)  # epochs whose state was copied

    def checkpoint(self) -> bytes:
        self.serialised.append(self.epoch)
        return self.blob

    def deferred_checkpoint(self) -> Callable[[], bytes]:
        self.copied.append(self.epoch)
        return self.checkpoint


@dataclass
class FakeState:
    epoch: int


@dataclass
class FakeResult:
    stop_reason: str
    history: list[dict[str, float]]
    state: FakeState
    blob: bytes
    failure: str | None = None

    def checkpoint(self) -> bytes:
        return self.blob

    @property
    def weights_metrics(self) -> dict[str, float]:
        return dict(self.history[-1]) if self.history else {}  # never restores a best epoch


def decode(blob: bytes) -> tuple[int, int]:
    _, epoch, batch = blob.decode().split(":")
    return int(epoch), int(batch)


@dataclass
class FakeTrainer:
    """Losses fall as 1/epoch, so every epoch is the best one unless ``losses`` says otherwise."""

    batches: int = 4
    losses: list[float] | None = None
    on_batch: Callable[[int, int], None] | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    serialised: list[int] = field(default_factory=list)  # epochs whose checkpoint() ran
    copied: list[int] = field(default_factory=list)  # epochs whose state was copied

    def __call__(self, spec: Any, X: Any, y: Any, *, init_params: Any = None,
                 resume: bytes | None = None, on_epoch: Any = None,
                 should_stop: Any = None, max_runtime_s: float | None = None,
                 divergence_factor: float | None = None,
                 overwrite_inputs: bool = False) -> FakeResult:
        epochs = int(spec.training.epochs)
        epoch, batch = decode(resume) if resume else (0, 0)
        self.calls.append({"resume": (epoch, batch) if resume else None,
                           "init_params": init_params})
        history: list[dict[str, float]] = []
        best = float("inf")
        while epoch < epochs:
            while batch < self.batches:
                if should_stop is not None and should_stop():
                    blob = f"fake:{epoch}:{batch}".encode()
                    return FakeResult("cancelled", history, FakeState(epoch), blob)
                if self.on_batch is not None:
                    self.on_batch(epoch, batch)
                batch += 1
            epoch, batch = epoch + 1, 0
            loss = self.losses[epoch - 1] if self.losses else 1.0 / epoch
            metrics = {"loss": loss, "val_loss": loss, "lr": 0.1, "seconds": 0.01}
            history.append(metrics)
            is_best = loss < best
            best = min(best, loss)
            if on_epoch is not None:
                on_epoch(FakeReport(epoch, epochs, dict(metrics), is_best,
                                    f"fake:{epoch}:0".encode(), self.serialised,
                                    self.copied))
        return FakeResult("epochs_done", history, FakeState(epoch), f"fake:{epoch}:0".encode())
