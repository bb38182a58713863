"""The ONNX model as a whole: its inputs and outputs, the standardization and the output link,
every opset offered, and the errors for what cannot be exported."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from core.losses import LINK_FUNCTIONS, LINKS
from export.errors import ExportError
from export.onnx import activations, layers
from export.onnx.model import INPUT_NAME, LINK_EXPORTERS, OUTPUT_NAME, export_onnx, onnx_model
from export.onnx.opsets import DEFAULT_OPSET, OPSETS
from tests.export.helpers import assert_exports_predict, network

EVERY_LAYER = [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "gelu"},
    {"type": "batch_norm", "activation": "silu"},
    {"type": "max_pool2d"},
    {"type": "avg_pool2d", "pool_size": 2, "stride": 1},
    {"type": "flatten"},
    {"type": "dense", "units": 16, "activation": "softplus"},
    {"type": "batch_norm", "activation": {"type": "elu", "alpha": 0.7}},
    {"type": "layer_norm"},
    {"type": "dropout", "rate": 0.3},
    {"type": "activation", "activation": {"type": "leaky_relu", "alpha": 0.1}},
    {"type": "dense", "units": 8, "activation": "tanh"},
    {"type": "dense", "units": 5, "activation": "softmax"},
]


def kitchen_sink(**kwargs: Any) -> Any:
    return network(EVERY_LAYER, (2, 9, 9), loss="cross_entropy", **kwargs)


# onnx's table of the smallest IR version that carries each opset; onnxruntime 1.16 reads
# IR versions up to 9 (and opsets up to 19).
IR_VERSIONS = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


@pytest.mark.parametrize("opset", OPSETS)
def test_every_opset_passes_the_full_check_and_answers_as_predict(opset: int) -> None:
    model = assert_exports_predict(kitchen_sink(), opset=opset)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert model.ir_version == IR_VERSIONS[opset]
    if opset <= 19:
        assert model.ir_version <= 9


def test_opsets_offered_and_the_default() -> None:
    assert list(OPSETS) == list(IR_VERSIONS) and DEFAULT_OPSET == 17
    assert onnx_model(kitchen_sink()).opset_import[0].version == DEFAULT_OPSET


def dims(value: onnx.ValueInfoProto) -> list[int | str]:
    shape = value.type.tensor_type.shape.dim
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in shape]


def test_one_float32_input_and_output_with_a_symbolic_batch() -> None:
    model = onnx_model(kitchen_sink())
    (given,), (answer,) = model.graph.input, model.graph.output
    assert (given.name, answer.name) == (INPUT_NAME, OUTPUT_NAME)
    assert given.type.tensor_type.elem_type == TensorProto.FLOAT
    assert answer.type.tensor_type.elem_type == TensorProto.FLOAT
    assert dims(given) == ["batch", 2, 9, 9] and dims(answer) == ["batch", 5]
    assert all(t.data_type == TensorProto.FLOAT for t in model.graph.initializer)
    assert {p.key: p.value for p in model.metadata_props} == {
        "weightsmith.standardized": "true", "weightsmith.output_activation": "softmax"}


def test_standardization_is_in_the_model_so_raw_rows_go_in() -> None:
    net = network([{"type": "dense", "units": 3}], (4,))
    assert net.preprocessing is not None
    model = assert_exports_predict(net, scale=10.0)
    assert [n.op_type for n in model.graph.node][:2] == ["Sub", "Div"]
    stored = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(stored["input.mean"], net.preprocessing.mean)
    np.testing.assert_array_equal(stored["input.std"], net.preprocessing.std)

    raw = network([{"type": "dense", "units": 3}], (4,), standardize=False)
    assert [n.op_type for n in onnx_model(raw).graph.node] == ["Gemm", "Identity"]


@pytest.mark.parametrize("loss", sorted(LINKS))
def test_the_output_link_of_every_loss(loss: str) -> None:
    net = network([{"type": "dense", "units": 6, "activation": "relu"},
                   {"type": "dense", "units": 3}], (4,), loss=loss)
    model = assert_exports_predict(net)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["weightsmith.output_activation"] == LINKS[loss] == net.loss_link


def test_a_final_softmax_before_cross_entropy_is_applied_once() -> None:
    # core fuses it into the loss's link; applying it again would flatten the probabilities.
    net = network([{"type": "dense", "units": 4, "activation": "softmax"}], (3,),
                  loss="cross_entropy")
    model = assert_exports_predict(net, scale=5.0)
    assert [n.op_type for n in model.graph.node].count("Softmax") == 1


def test_every_link_has_an_exporter() -> None:
    assert set(LINK_EXPORTERS) == set(LINK_FUNCTIONS)


def test_a_float64_network_exports_in_float32() -> None:
    net = network([{"type": "dense", "units": 8, "activation": "gelu"},
                   {"type": "batch_norm"}, {"type": "dense", "units": 3}], (5,),
                  loss="cross_entropy", dtype="float64")
    model = assert_exports_predict(net)
    assert all(t.data_type == TensorProto.FLOAT for t in model.graph.initializer)


def test_the_same_network_gives_the_same_bytes() -> None:
    # Nothing time- or run-dependent inside: a download can be cached and compared.
    assert export_onnx(kitchen_sink()) == export_onnx(kitchen_sink())
    assert export_onnx(kitchen_sink()) != export_onnx(kitchen_sink(seed=1))


@pytest.mark.parametrize("opset", [12, 22, 0, -1, True, 17.0, "17", None])
def test_an_opset_not_offered_is_refused(opset: Any) -> None:
    with pytest.raises(ExportError) as refused:
        onnx_model(kitchen_sink(), opset)
    assert refused.value.field == "opset"
    assert "from 13 to 21" in refused.value.message


def test_a_layer_type_without_an_exporter_names_the_layer(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.delitem(layers.LAYER_EXPORTERS, "batch_norm")
    with pytest.raises(ExportError) as refused:
        onnx_model(kitchen_sink())
    assert refused.value.field == "model.layers[1]"
    assert "'batch_norm' has no ONNX form" in refused.value.message
    assert str(refused.value).startswith("model.layers[1]: ")


def test_an_activation_without_an_exporter_names_the_layer_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(activations.ACTIVATION_EXPORTERS, "softplus")
    with pytest.raises(ExportError) as refused:
        onnx_model(kitchen_sink())
    assert refused.value.field == "model.layers[5].activation"
    assert "'softplus' has no ONNX form" in refused.value.message
