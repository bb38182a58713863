"""Per-layer training diagnostics: a few norms per layer and epoch, and the warnings they raise.

Cheap by construction (``training.diagnostics``, on by default: under 5% of an epoch on the
784-256-128-10 benchmark, see docs/spec.md). For each layer ``l`` with trainable parameters,
``θ_l`` is all of them as one vector (dense/conv: weight and bias; batch_norm/layer_norm:
gamma and beta), which is one contiguous slice of the network's flat arrays:

- ``weight_norm``  ``‖θ_l‖₂`` at the end of the epoch;
- ``grad_norm``    ``sqrt((1/B) Σ_b ‖g_{l,b}‖₂²)``: the root mean square over the epoch's B
  batches of the gradient each optimizer step received (after the L1/L2 penalty and
  clipping), one dot product per layer and batch on the gradients already there;
- ``update_ratio`` ``‖θ_l(end) - θ_l(start)‖₂ / ‖θ_l(start)‖₂`` over the epoch (None when the
  layer started at zero), from one copy of the flat parameters per epoch;
- ``dead_fraction`` for a layer whose activation can output exactly zero over a half-line
  (ReLU: ``Activation.zero_region``), the share of its units (features; conv channels) that
  were zero for every sample (and position) of the epoch's last batch, read from the
  activation's own output of that batch: no extra forward.

A resumed run starts an interrupted epoch's accumulators where it resumed (checkpoints hold
no diagnostic state): that one epoch's values cover the batches run since. Diagnostics only
read the arrays; a run trains to the same bits with them on or off.

Warnings (:func:`warnings`, one owner of the rule): a layer whose update ratio stays outside
``UPDATE_RATIO_RANGE`` for ``STREAK`` consecutive epochs, or whose dead fraction exceeds
``DEAD_LIMIT``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.network import Network

Array = NDArray[Any]

UPDATE_RATIO_RANGE = (1e-5, 1e-1)
STREAK = 3
DEAD_LIMIT = 0.5
FIELDS = ("weight_norm", "grad_norm", "update_ratio", "dead_fraction")
WARNING_KINDS = ("update_ratio_low", "update_ratio_high", "dead_units")


def _finite(value: float) -> float | None:
    """JSON-safe: NaN and inf (a blown-up run) read as None."""
    return value if math.isfinite(value) else None


class LayerDiagnostics:
    """Accumulates one epoch's diagnostics of ``network``; ``end_epoch()`` returns them.

    The loop calls :meth:`begin_epoch` when an epoch (or its resumed rest) starts,
    :meth:`add_batch` right before each optimizer step and :meth:`end_epoch` after the last
    batch, before validation runs its eval forwards.
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        self.layers: list[tuple[int, str, int, int]] = []  # (index, type, start, stop)
        self.relus: list[tuple[int, str, Any]] = []  # (index, type, activation)
        offset = 0
        for i, layer in enumerate(network.layers):
            size = sum(int(p.size) for p in layer.params.values())
            if size:
                self.layers.append((i, layer.type_name, offset, offset + size))
            offset += size
            activation = getattr(layer, "activation", None)
            if activation is not None and getattr(activation, "zero_region", False):
                self.relus.append((i, layer.type_name, activation))
        # Views made once: the loop's per-batch cost is one dot product per layer.
        self._grads = [network.flat_grads[a:b] for _, _, a, b in self.layers]
        self._start = np.empty_like(network.flat_params)
        self._start_norms = [0.0] * len(self.layers)
        self._sq = [0.0] * len(self.layers)
        self._batches = 0

    def begin_epoch(self) -> None:
        params = self._start
        np.copyto(params, self.network.flat_params)
        self._start_norms = [math.sqrt(float(np.dot(params[a:b], params[a:b])))
                             for _, _, a, b in self.layers]
        self._sq = [0.0] * len(self.layers)
        self._batches = 0

    def add_batch(self) -> None:
        """Add this step's squared gradient norms (call before the optimizer's step)."""
        sq = self._sq
        for k, g in enumerate(self._grads):
            sq[k] += float(np.dot(g, g))
        self._batches += 1

    def end_epoch(self) -> list[dict[str, Any]]:
        """[{layer, type, weight_norm?, grad_norm?, update_ratio?, dead_fraction?}] by layer."""
        params = self.network.flat_params
        delta = np.subtract(params, self._start, out=self._start)  # the start is not needed again
        rows: dict[int, dict[str, Any]] = {}
        for k, (i, kind, a, b) in enumerate(self.layers):
            w, d = params[a:b], delta[a:b]
            norm = math.sqrt(float(np.dot(w, w)))
            start = self._start_norms[k]
            rows[i] = {
                "layer": i, "type": kind, "weight_norm": _finite(norm),
                "grad_norm": (_finite(math.sqrt(self._sq[k] / self._batches))
                              if self._batches else None),
                "update_ratio": (_finite(math.sqrt(float(np.dot(d, d))) / start)
                                 if start > 0.0 else None),
            }
        for i, kind, activation in self.relus:
            rows.setdefault(i, {"layer": i, "type": kind})["dead_fraction"] = \
                dead_fraction(activation.output)
        return [rows[i] for i in sorted(rows)]


def dead_fraction(output: Array | None) -> float | None:
    """The share of units (axis 1) that are zero for every sample and position of ``output``
    (a ReLU's output: never negative); None before any forward."""
    if output is None or output.ndim < 2 or output.shape[0] == 0 or output.shape[1] == 0:
        return None
    axes = (0, *range(2, output.ndim))
    alive = np.max(output, axis=axes) > 0.0  # NaN compares False: counted dead, as it is
    units = int(output.shape[1])
    return (units - int(np.count_nonzero(alive))) / units


def warnings(epochs: Iterable[tuple[int, Sequence[Mapping[str, Any]]]],
             raised: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The warnings of a run: ``raised`` (earlier ones, kept first) plus the new ones found in
    ``epochs`` ((epoch, layer rows) oldest first; a gap in the numbering breaks a streak).

    One warning per (layer, kind), at the first epoch that meets the rule:
    ``update_ratio_low`` / ``update_ratio_high``: ``STREAK`` consecutive epochs below / above
    ``UPDATE_RATIO_RANGE``; ``dead_units``: ``dead_fraction`` > ``DEAD_LIMIT``. To continue a
    run's warnings, pass its last ``STREAK - 1`` stored epochs before the new ones.
    """
    out = [dict(w) for w in raised]
    seen = {(int(w["layer"]), str(w["kind"])) for w in out}
    streaks: dict[tuple[int, str], int] = {}
    previous: int | None = None
    for epoch, rows in epochs:
        if previous is not None and epoch != previous + 1:
            streaks.clear()
        previous = epoch
        for row in rows:
            layer = int(row["layer"])
            ratio, dead = row.get("update_ratio"), row.get("dead_fraction")
            low = ratio is not None and ratio < UPDATE_RATIO_RANGE[0]
            high = ratio is not None and ratio > UPDATE_RATIO_RANGE[1]
            for kind, hit in (("update_ratio_low", low), ("update_ratio_high", high)):
                streaks[(layer, kind)] = streaks.get((layer, kind), 0) + 1 if hit else 0
                if streaks[(layer, kind)] >= STREAK and (layer, kind) not in seen:
                    seen.add((layer, kind))
                    out.append(_warning(epoch, row, kind, float(ratio or 0.0)))
            if dead is not None and dead > DEAD_LIMIT and (layer, "dead_units") not in seen:
                seen.add((layer, "dead_units"))
                out.append(_warning(epoch, row, "dead_units", dead))
    return out


def _warning(epoch: int, row: Mapping[str, Any], kind: str, value: float) -> dict[str, Any]:
    layer = int(row["layer"])
    lo, hi = UPDATE_RATIO_RANGE
    message = {
        "update_ratio_low": f"layer {layer}'s update ratio stayed below {lo:g} for {STREAK} "
                            "epochs: it barely learns (learning rate too low, or vanishing "
                            "gradients)",
        "update_ratio_high": f"layer {layer}'s update ratio stayed above {hi:g} for {STREAK} "
                             "epochs: its weights change too fast (learning rate too high)",
        "dead_units": f"{value:.0%} of layer {layer}'s units were zero for the whole last "
                      "batch (dead ReLUs: lower the learning rate or change the "
                      "initialization)",
    }[kind]
    return {"layer": layer, "type": row.get("type"), "kind": kind, "epoch": int(epoch),
            "value": value, "message": message}


def by_layer(epochs: Iterable[tuple[int, Sequence[Mapping[str, Any]]]],
             layer: int | None = None) -> list[dict[str, Any]]:
    """Epoch rows turned into one series per layer (what the API shows and the dashboard
    draws): [{"layer", "type", "epochs": [...], and each field a layer reported: [...]}],
    by layer index; ``layer`` keeps only that one. A field missing from an epoch is None."""
    series: dict[int, dict[str, Any]] = {}
    for epoch, rows in epochs:
        for row in rows:
            index = int(row["layer"])
            if layer is not None and index != layer:
                continue
            out = series.setdefault(index, {"layer": index, "type": row.get("type"),
                                            "epochs": []})
            filled = len(out["epochs"])
            out["epochs"].append(int(epoch))
            for name in FIELDS:
                if name in row:
                    out.setdefault(name, [None] * filled)
            for name in FIELDS:
                if name in out:
                    out[name].append(row.get(name))
    return [series[i] for i in sorted(series)]
