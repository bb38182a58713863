"""A loaded network as one ONNX model that answers exactly what ``Network.predict`` answers.

The model takes the raw rows, float32 ``input`` of shape (batch, *input_shape) with a symbolic
batch dimension, and returns float32 ``output`` (batch, *output_shape). In between, in order:

1. the stored standardization, ``(input - __input_mean__) / __input_std__``, when the network
   has one (``Sub`` and ``Div`` by constants);
2. each layer, by ``export.onnx.layers.LAYER_EXPORTERS`` (a layer type without an entry is an
   ExportError naming ``model.layers[i]``);
3. predict's output link: softmax (cross_entropy), sigmoid (binary_cross_entropy), or nothing
   (raw outputs: regression losses, or an import that named no loss).

The ``onnx`` package's helper API builds it; no other framework is involved.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto, helper

from core.network import Network
from export.errors import ExportError
from export.onnx.activations import sigmoid, softmax
from export.onnx.graph import Graph
from export.onnx.layers import LAYER_EXPORTERS
from export.onnx.opsets import DEFAULT_OPSET, check_opset

INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"
PRODUCER = "weightsmith"


def _identity(graph: Graph, x: str) -> str:
    return x


# core.losses.LINK_FUNCTIONS, name for name (a test checks the keys agree).
LINK_EXPORTERS: dict[str, Callable[[Graph, str], str]] = {
    "identity": _identity,
    "softmax": softmax,
    "sigmoid": sigmoid,
}


def _standardize(graph: Graph, network: Network, x: str) -> str:
    if network.preprocessing is None:
        return x
    with graph.scope(INPUT_NAME):
        centred = graph.op("Sub", x, graph.constant("mean", network.preprocessing.mean))
        return graph.op("Div", centred, graph.constant("std", network.preprocessing.std))


def _layers(graph: Graph, network: Network, x: str) -> str:
    for i, layer in enumerate(network.layers):
        path = f"model.layers[{i}]"
        exporter = LAYER_EXPORTERS.get(layer.type_name)
        if exporter is None:
            raise ExportError(path, f"layer type {layer.type_name!r} has no ONNX form; "
                              f"exportable: {sorted(LAYER_EXPORTERS)}")
        with graph.scope(f"layers.{i}"):
            try:
                x = exporter(graph, layer, x)
            except ExportError as exc:
                raise exc.within(path) from None
    return x


def _link(graph: Graph, network: Network, x: str) -> str:
    exporter = LINK_EXPORTERS.get(network.loss_link)
    if exporter is None:
        raise ExportError("loss", f"output link {network.loss_link!r} has no ONNX form")
    with graph.scope(OUTPUT_NAME):
        return exporter(graph, x)


def _value_info(name: str, shape: tuple[int, ...]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH_DIM, *shape])


def onnx_model(network: Network, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The ONNX model of ``network`` (as ``core.checkpoint.load_checkpoint`` returns it).

    Raises ExportError("opset") for an opset outside ``export.onnx.opsets.OPSETS`` and
    ExportError("model.layers[i]...") for a layer or activation without an ONNX form.
    """
    opset = check_opset(opset)
    graph = Graph(opset)
    x = _link(graph, network, _layers(graph, network, _standardize(graph, network, INPUT_NAME)))
    graph.output_as(x, OUTPUT_NAME)
    proto = helper.make_graph(
        graph.nodes, PRODUCER,
        [_value_info(INPUT_NAME, network.input_shape)],
        [_value_info(OUTPUT_NAME, network.output_shape)],
        initializer=graph.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(proto, opset_imports=opsets, producer_name=PRODUCER,
                              ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(model, {
        "weightsmith.standardized": str(network.preprocessing is not None).lower(),
        "weightsmith.output_activation": network.loss_link,
    })
    return model


def export_onnx(network: Network, opset: int = DEFAULT_OPSET) -> bytes:
    """:func:`onnx_model` serialised: the bytes of a ``model.onnx`` file."""
    data: bytes = onnx_model(network, opset).SerializeToString()
    return data
