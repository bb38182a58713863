"""Per-batch accuracy counts and the evaluation pass over held-out rows.

Accuracy is counted from raw outputs, without the link: the argmax of logits equals the
argmax of softmax, and a logit > 0 is a sigmoid > 0.5. A binary/multi-label (BCE) output
counts each of its k columns as one prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.losses import Loss
from core.network import Network

Array = NDArray[Any]
EVAL_BATCH = 1024


def correct_count(outputs: Array, targets: Array, loss_name: str) -> tuple[int, int]:
    """(correct predictions, predictions) of a batch; outputs (N, k), targets (N,) or (N, k)."""
    if loss_name == "cross_entropy":
        hits = np.argmax(outputs, axis=1) == targets.reshape(-1)
        return int(np.count_nonzero(hits)), int(hits.size)
    t = np.asarray(targets).reshape(outputs.shape)
    hits = (outputs > 0) == (t > 0.5)
    return int(np.count_nonzero(hits)), int(hits.size)


def evaluate(network: Network, loss: Loss, X: Array, y: Array, *, classification: bool,
             batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """Mean loss (and accuracy) over X (N, ...), y in eval mode, in chunks of ``batch_size``."""
    chunks = ((X[s:s + batch_size], y[s:s + batch_size])
              for s in range(0, int(X.shape[0]), batch_size))
    return evaluate_batches(network, loss, chunks, classification=classification)


def evaluate_batches(network: Network, loss: Loss, batches: Iterable[tuple[Array, Array]], *,
                     classification: bool) -> dict[str, float]:
    """Mean loss (and accuracy) over ``batches`` of (x, y) in eval mode.

    The mean weights each batch's mean loss by its row count, so it equals the loss over
    all rows at once (up to rounding) for every unweighted loss.
    """
    total, n = 0.0, 0
    correct = count = 0
    for xb, yb in batches:
        outputs = network.forward(xb, training=False)
        total += loss.forward(outputs, yb) * xb.shape[0]
        n += int(xb.shape[0])
        if classification:
            c, k = correct_count(outputs, yb, network.loss_name or "")
            correct, count = correct + c, count + k
    metrics = {"loss": total / n}
    if classification:
        metrics["accuracy"] = correct / count
    return metrics
