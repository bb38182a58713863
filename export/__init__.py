"""Exporters: a trained network of ``core`` written in another format, for other runtimes.

Each format is a subpackage (``export.onnx``). They read what ``core`` built and loaded (the
layers of ``core.checkpoint.load_checkpoint``'s network, their weights, its standardization and
output link) and never change it; nothing here imports the web service, the store or the queue.
"""
