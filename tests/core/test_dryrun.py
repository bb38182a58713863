"""The dry run: hand-counted parameters, FLOPs and memory, agreeing with the built network."""

from __future__ import annotations

from typing import Any

import pytest

from core.batching import split_indices
from core.dryrun import dry_run, split_sizes
from core.errors import SpecError
from core.network import build_network
from core.spec import Spec

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
    assert report["layers"] == [
        # 2*64*128 MACs + 128 bias adds + 128 relu
        {"index": 0, "type": "dense", "output_shape": [128], "params": 64 * 128 + 128,
         "flops": 2 * 64 * 128 + 128 + 128},
        {"index": 1, "type": "dropout", "output_shape": [128], "params": 0, "flops": 128},
        {"index": 2, "type": "dense", "output_shape": [10], "params": 128 * 10 + 10,
         "flops": 2 * 128 * 10 + 10},
    ]
    assert report["total_params"] == 9610
    forward = 16640 + 128 + 2570
    assert (report["n_train"], report["n_val"]) == (1617, 180)
    assert report["flops_per_epoch"] == 3 * forward * 1617 + forward * 180
    # adam: params + grads + 2 moments; 32 rows of (input + 3 outputs), values and gradients
    activations = 64 + 128 + 128 + 10
    assert report["memory_bytes"] == 4 * (4 * 9610 + 32 * 2 * activations)
    assert report["batch_size"] == 32 and report["data_bytes"] == 1797 * 64 * 4


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
    # sgd with momentum keeps one buffer; im2col scratch is 9 * 64 per sample
    activations = 64 + 512 + 512 + 128 + 128 + 10
    assert report["memory_bytes"] == 8 * (3 * 1386 + 100 * (2 * activations + 2 * 9 * 64))


@pytest.mark.parametrize("spec", [MLP, CNN])
def test_total_params_equal_the_built_network(spec: dict[str, Any]) -> None:
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
