"""Training side: data, networks, the GAN, and the train/export/evaluate commands."""

import os

# onnxruntime (export parity, evaluation) would otherwise start Microsoft's telemetry on import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
