"""The dry run: hand-counted parameters, FLOPs and memory, agreeing with the built network.

Memory is checked against what NumPy really allocates (tracemalloc sees every array): each
layer type's estimate must cover its measured peak, and a whole run's estimate must cover
the peak of ``core.train`` without being absurdly above it.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from core.activations import ACTIVATIONS
from core.batching import split_indices
from core.dryrun import dry_run, held_rows, split_sizes
from core.errors import SpecError
from core.layers import LAYERS
from core.network import build_network
from core.spec import LAYER_SPECS, ModelSpec, Spec
from core.training import train

MLP: dict[str, Any] = {
    "model": {"layers": [
        {"type": "dense", "units": 128, "activation": "relu"},
        {"type": "dropout", "rate": 0.2},
        {"type": "dense", "units": 10},
    ]},
    "training": {"batch_size": 32, "validation_split": 0.1},
}
CNN: dict[str, Any] = {
    "model": {"layers": [
        {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same",
         "activation": "relu"},
        {"type": "batch_norm"},
        {"type": "max_pool2d"},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ]},
    "optimizer": {"type": "sgd", "momentum": 0.9},
    "training": {"batch_size": "full", "validation_split": 0.0, "dtype": "float64"},
}


def test_mlp_report_by_hand() -> None:
    report = dry_run(Spec.from_dict(MLP), (64,), 1797)
    batch, f32 = 32, 4
    assert report["layers"] == [
        # 2*64*128 MACs + 128 bias adds + 128 relu; holds output, 2x input (dx, x.T), mask,
        # the zeros relu compares against
        {"index": 0, "type": "dense", "output_shape": [128], "params": 64 * 128 + 128,
         "flops": 2 * 64 * 128 + 128 + 128,
         "memory_bytes": batch * (128 + 128 + 128 + 128) * f32},
        {"index": 1, "type": "dropout", "output_shape": [128], "params": 0, "flops": 128,
         "memory_bytes": batch * 3 * 128 * f32},
        {"index": 2, "type": "dense", "output_shape": [10], "params": 128 * 10 + 10,
         "flops": 2 * 128 * 10 + 10, "memory_bytes": batch * (10 + 2 * 128) * f32},
    ]
    assert report["total_params"] == 9610
    forward = 16640 + 128 + 2570
    assert (report["n_train"], report["n_val"]) == (1617, 180)
    assert report["flops_per_epoch"] == 3 * forward * 1617 + forward * 180
    # adam: params + grads + 2 moments + the diagnostics' epoch-start copy. Layers hold arrays
    # for every batch size the run meets: 32, the last batch's 1617 % 32 = 17 and the 180
    # validation rows; per row the three layers, the input and three loss arrays of the
    # output's width.
    per_row = 512 + 384 + 266 + 64 + 3 * 10
    data = 1797 * 64 * f32
    # the data once; the batch and a validation chunk gathered before their cast; the
    # standardization fit's float64 chunk of 64 rows and the carried sums
    assert report["memory_bytes"] == f32 * (5 * 9610 + (32 + 17 + 180) * per_row) \
        + data + (32 + 180) * 64 * f32 + 65 * 64 * 8
    assert report["batch_size"] == 32 and report["data_bytes"] == data


def test_cnn_report_by_hand() -> None:
    report = dry_run(Spec.from_dict(CNN), (8, 8), 100)  # (H, W) is one channel
    shapes = [layer["output_shape"] for layer in report["layers"]]
    assert shapes == [[8, 8, 8], [8, 8, 8], [8, 4, 4], [128], [10]]
    assert [layer["params"] for layer in report["layers"]] == [80, 16, 0, 0, 1290]
    conv_flops = 2 * 9 * 512 + 512 + 512
    assert report["layers"][0]["flops"] == conv_flops
    assert report["layers"][2]["flops"] == 4 * 128
    assert report["total_params"] == 1386
    assert report["batch_size"] == 100 and report["n_val"] == 0
    # conv per sample: padded planes 10x10 and their gradient, im2col columns (9 + 1 rows)
    # and their gradient (9) over wide rows of 10, GEMM output and its gradient, output,
    # relu's mask and zeros, input gradient
    conv = 2 * 100 + (2 * 9 + 1) * 8 * 10 + 2 * 8 * 8 * 10 + 512 + 512 + 512 + 64
    # batch norm: 5 arrays and the C-order copies of its channel-major input and gradient;
    # 2x2 max pool: output, its masks and indices (8 output-sized arrays), input gradient;
    # flatten: the C-order copy of its channel-major input
    held = [conv, 7 * 512, 9 * 128 + 512, 128, 10 + 2 * 128]
    assert [layer["memory_bytes"] for layer in report["layers"]] == [100 * h * 8 for h in held]
    # sgd with momentum keeps one buffer, diagnostics the epoch-start copy; full batch: one
    # batch size, no validation
    per_row = sum(held) + 64 + 3 * 10
    # the data once and the full batch gathered before its cast; standardized by default
    assert report["memory_bytes"] == 8 * (4 * 1386 + 100 * per_row) + 2 * 100 * 64 * 8 \
        + 65 * 64 * 8


@pytest.mark.parametrize(("batch", "n_train", "n_val", "rows"), [
    (32, 1617, 180, 32 + 17 + 180),
    (64, 640, 0, 64),
    (100, 100, 5000, 100 + 256 + 5000 % 1024 % 256 + 1024 % 256),
    (50, 75, 300, 50 + 25 + 256 + 44),
])
def test_held_rows_follow_every_batch_size_a_run_meets(batch: int, n_train: int, n_val: int,
                                                        rows: int) -> None:
    # evaluate() takes chunks of 1024 rows; the network splits them into chunks of 256
    assert held_rows(batch, n_train, n_val) == rows


@pytest.mark.parametrize("spec", [MLP, CNN])
def test_total_params_equal_the_built_network_for_whole_models(spec: dict[str, Any]) -> None:
    parsed = Spec.from_dict(spec)
    shape = (64,) if spec is MLP else (1, 8, 8)
    network = build_network(parsed.model, shape, seed=0)
    report = dry_run(parsed, shape, 10)
    assert report["total_params"] == network.num_params
    assert [tuple(layer["output_shape"]) for layer in report["layers"]] == network.shapes


@pytest.mark.parametrize(("n", "split"), [(1797, 0.1), (10, 0.25), (3, 0.5), (2, 0.9), (7, 0.0)])
def test_split_sizes_match_the_training_split(n: int, split: float) -> None:
    train, val = split_indices(n, split, seed=0)
    assert split_sizes(n, split) == (len(train), len(val))


def test_shape_problem_is_a_spec_error_naming_the_layer() -> None:
    with pytest.raises(SpecError) as info:
        dry_run(Spec.from_dict(CNN), (64,), 10)
    assert info.value.field == "model.layers[0]"
    assert info.value.message == "conv2d needs (C, H, W) inputs but gets (64,)"


def _smallest_layer(name: str) -> dict[str, Any]:
    """A ``name`` layer with only its required fields, at their declared examples."""
    return {"type": name, **{p.name: p.example for p in LAYER_SPECS[name].spec_params
                             if p.required}}


def _cases() -> list[tuple[dict[str, Any], tuple[int, ...]]]:
    cases = []
    for name, cls in LAYER_SPECS.items():
        for rank in cls.input_ranks:
            cases.append((_smallest_layer(name), (7,) if rank == 1 else (2, 6, 5)))
    return cases


@pytest.mark.parametrize(("layer", "input_shape"), _cases(),
                         ids=[f"{c[0]['type']}-{len(c[1])}d" for c in _cases()])
def test_every_registered_layer_type_answers_for_itself(layer: dict[str, Any],
                                                        input_shape: tuple[int, ...]) -> None:
    """Shape, parameters, FLOPs and memory of each type agree with its built layer.

    The cases come from the registry, so a new layer type is checked without a line here.
    """
    flat = LAYER_SPECS[layer["type"]].flat_output
    head = [layer] + ([{"type": "flatten"}] if len(input_shape) == 3 and not flat else [])
    spec = Spec.from_dict({"model": {"layers": [*head, {"type": "dense", "units": 3}]}})
    report = dry_run(spec, input_shape, 20)
    network = build_network(spec.model, input_shape, seed=0)
    first = report["layers"][0]
    assert tuple(first["output_shape"]) == network.shapes[0]
    assert first["params"] == sum(p.size for p in network.layers[0].params.values())
    assert report["total_params"] == network.num_params
    assert first["flops"] >= 0 and first["memory_bytes"] >= 0
    if layer["type"] != "flatten":  # a reshape is free; everything else costs something
        assert first["flops"] > 0 and first["memory_bytes"] > 0


def test_layer_norm_counts_by_hand() -> None:
    spec = Spec.from_dict({"model": {"layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3}, {"type": "layer_norm"},
        {"type": "flatten"}, {"type": "layer_norm", "elementwise_affine": False},
        {"type": "dense", "units": 2}]},
        "training": {"batch_size": 10, "validation_split": 0.0}})
    report = dry_run(spec, (1, 6, 6), 10)
    norm, plain = report["layers"][1], report["layers"][3]
    assert norm["params"] == 2 * 3 * 4 * 4 and plain["params"] == 0  # gamma, beta (C, H, W)
    assert norm["flops"] == plain["flops"] == 7 * 48
    # (C, H, W) inputs add the C-order copies of a channel-major input and its gradient
    assert norm["memory_bytes"] == 10 * 7 * 48 * 4 and plain["memory_bytes"] == 10 * 5 * 48 * 4
    assert report["total_params"] == build_network(spec.model, (1, 6, 6), 0).num_params


def _traced_peak(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# Python objects and a layer's few batch-independent arrays (a conv's kernel matrix).
SLACK = 16 * 1024

LAYER_MEMORY_CASES = [
    *[({"type": "dense", "units": 64, "activation": a}, (32,)) for a in ACTIVATIONS],
    *[({"type": "activation", "activation": a}, (64,)) for a in ACTIVATIONS],
    ({"type": "conv2d", "filters": 4, "kernel_size": 3}, (3, 10, 10)),
    ({"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same",
      "activation": "gelu"}, (3, 10, 10)),
    ({"type": "conv2d", "filters": 4, "kernel_size": [3, 2], "stride": 2, "padding": 1},
     (3, 11, 10)),
    ({"type": "conv2d", "filters": 2, "kernel_size": 1, "padding": 30}, (1, 4, 4)),
    ({"type": "max_pool2d"}, (3, 10, 10)),
    ({"type": "max_pool2d", "pool_size": 3, "stride": 1}, (3, 10, 10)),
    ({"type": "avg_pool2d", "pool_size": 3, "stride": 2}, (3, 10, 10)),
    ({"type": "avg_pool2d", "pool_size": 2, "stride": 1}, (2, 9, 9)),
    ({"type": "flatten"}, (3, 10, 10)),
    ({"type": "dropout"}, (64,)),
    ({"type": "batch_norm", "activation": "silu"}, (64,)),
    ({"type": "batch_norm"}, (3, 10, 10)),
    ({"type": "layer_norm"}, (64,)),
    ({"type": "layer_norm", "elementwise_affine": False}, (64,)),
    ({"type": "layer_norm"}, (3, 10, 10)),
]


def _as_after_a_conv(a: np.ndarray) -> np.ndarray:
    """A 4-D batch channel-major, as a conv or pool passes it on (core.layers.base): the
    layers that copy it into C order must count the copy."""
    if a.ndim != 4:
        return a
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("layer_json", "input_shape"), LAYER_MEMORY_CASES,
                         ids=[f"{c[0]['type']}-{c[0].get('activation', '')}-{len(c[1])}d"
                              for c in LAYER_MEMORY_CASES])
def test_layer_memory_covers_what_a_training_step_allocates(
        layer_json: dict[str, Any], input_shape: tuple[int, ...], dtype: str) -> None:
    spec = ModelSpec.from_dict({"layers": [layer_json]}).layers[0]
    layer = LAYERS[spec.type].from_spec(spec)
    out_shape = layer.build(input_shape, np.random.default_rng(0), dtype)
    assert out_shape == spec.output_shape(input_shape, "x")
    rng = np.random.default_rng(1)
    x = _as_after_a_conv(rng.standard_normal((200, *input_shape)).astype(dtype))
    dy = _as_after_a_conv(rng.standard_normal((200, *out_shape)).astype(dtype))
    peak = _traced_peak(lambda: (layer.forward(x, True), layer.backward(dy)))
    estimate = spec.memory_bytes(input_shape, out_shape, 200, dtype)
    assert peak <= estimate + SLACK, (peak, estimate)
    assert estimate <= 2.5 * peak + SLACK, (peak, estimate)


RUNS: list[tuple[list[dict[str, Any]], tuple[int, ...], int, Any, float]] = [
    ([{"type": "dense", "units": 128, "activation": "relu"}, {"type": "dropout"},
      {"type": "dense", "units": 3}], (64,), 2000, 32, 0.1),
    ([{"type": "dense", "units": 256, "activation": "gelu"}, {"type": "layer_norm"},
      {"type": "dense", "units": 3}], (16,), 1500, 500, 0.0),
    ([{"type": "dense", "units": 64, "activation": "elu"}, {"type": "batch_norm"},
      {"type": "activation", "activation": "silu"}, {"type": "dense", "units": 3}],
     (64,), 3000, 512, 0.2),
    ([{"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same",
       "activation": "relu"}, {"type": "batch_norm"}, {"type": "max_pool2d"},
      {"type": "flatten"}, {"type": "dense", "units": 3}], (1, 8, 8), 1000, 64, 0.1),
    ([{"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": 1},
      {"type": "layer_norm"}, {"type": "avg_pool2d"}, {"type": "flatten"},
      {"type": "dense", "units": 3}], (2, 12, 12), 600, "full", 0.25),
    ([{"type": "conv2d", "filters": 2, "kernel_size": 1, "padding": 40}, {"type": "flatten"},
      {"type": "dense", "units": 3}], (1, 8, 8), 300, 50, 0.1),
]


@pytest.mark.parametrize(("layers", "shape", "n", "batch", "split"), RUNS,
                         ids=[f"run{i}" for i in range(len(RUNS))])
def test_memory_estimate_covers_a_training_run(layers: list[dict[str, Any]],
                                               shape: tuple[int, ...], n: int, batch: Any,
                                               split: float) -> None:
    spec = Spec.from_dict({"model": {"layers": layers}, "training": {
        "epochs": 1, "batch_size": batch, "validation_split": split}})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    estimate = dry_run(spec, shape, n)["memory_bytes"]

    def run() -> None:  # the data is counted once, as the worker holds it (never copied)
        X = rng.standard_normal((n, *shape), dtype=np.float32)
        train(spec, X, y)

    peak = _traced_peak(run)
    # validation chunks are counted as if they trained too: up to 3x for a norm-heavy model
    assert peak <= estimate <= 3 * peak, (peak, estimate)


@pytest.mark.parametrize(("optimizer", "arrays"), [
    ({"type": "sgd"}, 0), ({"type": "sgd", "momentum": 0.9}, 1), ({"type": "adam"}, 2),
    ({"type": "adam", "amsgrad": True}, 3), ({"type": "nadam"}, 2), ({"type": "adagrad"}, 1),
    ({"type": "rmsprop", "centered": True, "momentum": 0.5}, 3),
])
def test_optimizer_state_is_what_its_class_declares(optimizer: dict[str, Any],
                                                     arrays: int) -> None:
    def memory(opt: dict[str, Any]) -> int:
        return int(dry_run(Spec.from_dict({**MLP, "optimizer": opt}), (64,), 100)[
            "memory_bytes"])

    assert memory(optimizer) - memory({"type": "sgd"}) == arrays * 9610 * 4
