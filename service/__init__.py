"""Serving side of the deblurring product: ONNX Runtime engine, tiling, image I/O, HTTP API, CLI.

Never imports tensorflow: the service installs and runs without the training extra.
"""

import os

# onnxruntime 1.31 on Linux starts Microsoft's OneDS telemetry when it is imported (it writes a `.ses`
# session file into TMPDIR and would post usage events). A deblurring service has no business phoning
# home; the library reads this variable at import, so it is set before anything imports onnxruntime.
# Set ORT_DISABLE_TELEMETRY=0 in the environment to opt back in.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
