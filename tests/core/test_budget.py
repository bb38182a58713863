"""core.budget: the dry run's estimate split by layer, checked against a Budget."""

from __future__ import annotations

import numpy as np
import pytest

from core.budget import (
    Budget,
    BudgetError,
    array_bytes,
    check_training,
    inference_error,
    inference_memory,
    network_bytes,
    training_memory,
)
from core.errors import SpecErrors

REPORT = {
    "layers": [{"index": 0, "type": "dense", "output_shape": [10], "params": 650, "flops": 1300},
               {"index": 1, "type": "activation", "output_shape": [10], "params": 0,
                "flops": 10}],
    "total_params": 650, "flops_per_epoch": 3_000_000, "memory_bytes": 10_000,
    "data_bytes": 500, "batch_size": 32,
}
ROOMY = Budget(max_layers=10, max_params=1000, max_memory_bytes=11_000,
               max_flops_per_epoch=10**7)


def test_each_layer_gets_its_activations_and_a_share_of_the_rest() -> None:
    m = training_memory(REPORT, itemsize=4)
    activations = 2 * 32 * 10 * 4  # an output and its gradient for a batch of 32: 2560
    rest = 10_000 - 500 - 2 * activations  # 4380: parameters, gradients, optimizer state
    weights = (650 * 4 + activations, activations)
    assert m.layers == (activations + round(rest * weights[0] / sum(weights)),
                        activations + round(rest * weights[1] / sum(weights))) == (5488, 4012)
    assert (m.total, m.data, m.batch_rows) == (10_000, 500, 32)


def test_a_dry_run_that_reports_layer_memory_is_taken_at_its_word() -> None:
    report = {**REPORT, "layers": [{**REPORT["layers"][0], "memory_bytes": 9000},
                                   {**REPORT["layers"][1], "memory_bytes": 1000}]}
    assert training_memory(report, itemsize=4).layers == (9000, 1000)


def test_a_job_within_its_budget_passes_and_each_excess_is_named() -> None:
    check_training(REPORT, 4, ROOMY)
    with pytest.raises(BudgetError) as one:
        check_training(REPORT, 4, Budget(10, 1000, 9_999, 10**7))
    assert one.value.field == "model.layers[0]"
    assert one.value.message == (
        "training needs an estimated 10,000 bytes (9.77 KiB) of memory (5,488 bytes "
        "(5.36 KiB) of it for layer 0 (dense) with a batch of 32); the limit is 9,999 bytes "
        "(9.76 KiB)")
    data_heavy = {**REPORT, "memory_bytes": 50_000, "data_bytes": 40_000}
    with pytest.raises(BudgetError) as data:
        check_training(data_heavy, 4, Budget(10, 1000, 20_000, 10**7))
    assert data.value.field == "dataset"
    assert data.value.message.startswith(
        "training needs an estimated 50,000 bytes (48.8 KiB) of memory (40,000 bytes "
        "(39.1 KiB) of it for the data)")
    with pytest.raises(SpecErrors) as many:
        check_training(REPORT, 4, Budget(1, 100, 10**9, 10**6))
    assert [(e.field, e.message.split(";")[0]) for e in many.value.errors] == [
        ("model.layers", "2 layers"),
        ("model.layers[0]", "the model has 650 parameters, 650 of them in this layer (dense)"),
        ("model.layers[0]", "an epoch needs an estimated 3e+06 FLOPs (layer 0 (dense): 1.3e+03 "
                            "per row forward)"),
    ]


def test_inference_counts_each_output_twice_and_the_input_once() -> None:
    per_layer = inference_memory((1, 8, 8), [(1, 2408, 2408), (16,)], rows=3, itemsize=4)
    assert per_layer == [3 * 2 * 2408 * 2408 * 4 + 3 * 64 * 4, 3 * 2 * 16 * 4]
    assert inference_error(per_layer, 3, sum(per_layer), ["conv2d", "dense"]) is None
    message = inference_error(per_layer, 3, 1000, ["conv2d", "dense"])
    assert message is not None and message.startswith(
        "a batch of 3 rows needs an estimated 139,164,288 bytes (133 MiB) of activations "
        "(139,163,904 bytes (133 MiB) for layer 0 (conv2d))")


def test_array_bytes_counts_a_buffer_once_however_many_views_share_it() -> None:
    flat = np.zeros(100, np.float32)
    holder = type("Holder", (), {})()
    holder.params = {"w": flat[:60].reshape(6, 10), "b": flat[60:]}
    holder.flat = flat
    holder.scratch = np.zeros((4, 4), np.float64)
    assert array_bytes([holder]) == 400 + 128


def test_network_bytes_grows_with_the_scratch_of_a_forward_pass() -> None:
    from core.network import build_network

    net = build_network({"layers": [{"type": "dense", "units": 50}]}, (20,), seed=0)
    before = network_bytes(net)
    assert before >= 2 * (20 * 50 + 50) * 4  # parameters and gradients
    net.predict(np.zeros((200, 20)))
    assert network_bytes(net) >= before + 200 * 50 * 4


def test_show_bytes_is_exact_and_readable_near_a_unit_boundary() -> None:
    from core.budget import show_bytes

    assert show_bytes(2971054132) == "2,971,054,132 bytes (2.77 GiB)"
    assert show_bytes(1037142) == "1,037,142 bytes (1013 KiB)"  # not 1.01e+03
    assert show_bytes(1048575) == "1,048,575 bytes (1024 KiB)"
    assert show_bytes(512) == "512 bytes"
