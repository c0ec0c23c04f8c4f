"""Training side: data, networks, the GAN, and the train/export/evaluate commands."""

import os

# onnxruntime (export parity, evaluation) would otherwise start Microsoft's telemetry on import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
# TensorFlow's C++ INFO and WARNING lines (oneDNN, CUDA probing) on every command; errors still show.
# Here, once: every module of the package is imported after this, so it is set before tensorflow is.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
