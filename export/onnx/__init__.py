"""ONNX export of a loaded network (``export.onnx.model.export_onnx``).

The package itself imports nothing heavy: ``export.onnx.opsets`` (the range of opsets offered)
is read by the API's request schema at start-up, while the ``onnx`` package (a second to
import) is loaded only by ``export.onnx.model`` when a model is actually exported.
"""
