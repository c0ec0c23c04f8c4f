"""Serving side of the deblurring product: ONNX Runtime engine, tiling, image I/O, HTTP API, CLI.

Never imports tensorflow: the service installs and runs without the training extra.
"""

__version__ = "0.1.0"
