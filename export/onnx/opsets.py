"""The ONNX opsets the exporter writes, and the IR version each is stamped with.

Opset 13 is the floor: its Softmax normalises one axis (what core's softmax does) and its
operators cover every layer. Opset 21 is the newest an onnxruntime release has supported for
long (1.18, May 2024). The IR version is the smallest one that carries the opset (onnx's own
table, ``onnx.helper.find_min_ir_version_for``): 7 for opsets 13-14, 8 for 15-18, 9 for
19-20, 10 for 21. onnxruntime 1.16 reads IR versions up to 9 and opsets up to 19, so a model
of the default opset loads in 1.16 and every later release; 20 needs onnxruntime 1.17 and 21
needs 1.18, whatever the IR version says (checked by running every opset's export of one
model with each layer type in onnxruntime 1.16.3, 1.17.3 and 1.18.1).
"""

from __future__ import annotations

from export.errors import ExportError

MIN_OPSET = 13
MAX_OPSET = 21
DEFAULT_OPSET = 17
OPSETS = range(MIN_OPSET, MAX_OPSET + 1)


def check_opset(opset: object) -> int:
    """``opset`` as an int when it is one the exporter offers, else ExportError("opset")."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ExportError("opset", f"must be an integer from {MIN_OPSET} to {MAX_OPSET}, "
                          f"got {opset!r}")
    return opset
