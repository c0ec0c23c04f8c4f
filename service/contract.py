"""The model-file contract (docs/model-contract.md) in one place: the names, layout and value range of
the ONNX graph's tensors and the keys of its metadata_props.

Why one module: `deblur-export` writes what `engine.Engine` checks; both read these constants, so the two
sides cannot drift. Pure python on purpose: the training package imports it without onnxruntime.
"""

from __future__ import annotations

INPUT_NAME = "blurry"
OUTPUT_NAME = "sharp"
LAYOUT = "NHWC"
DTYPE = "float32"
ONNX_TYPE = "tensor(float)"  # what onnxruntime reports for DTYPE
CHANNELS = 3  # RGB
VALUE_RANGE = (0.0, 1.0)
NORMALISATION = "rgb01"  # the values of VALUE_RANGE, no mean/std
DYNAMIC_DIMS = ("N", "H", "W")  # the symbolic names of the batch, height and width dimensions
OPSET = 17  # what deblur-export writes; the contract asks for at least this


class Meta:
    """The metadata_props keys; absent keys take the defaults docs/model-contract.md lists."""

    NAME = "name"
    VERSION = "version"
    SIZE_MULTIPLE = "size_multiple"
    NORMALISATION = "normalisation"
    LAYOUT = "layout"
    TRAINING = "training"
    METRICS = "metrics"
    TRAINED = "trained"
    ARCHITECTURE = "architecture"
    HINT = "hint"  # a kernel-aware model: the hint it reads beside the photo (service/kernel_aware.py)
    HINT_GUIDE = "hint_guide"  # … and the file name of the plain model that guides that hint
    HINT_CORRECTOR = "hint_corrector"  # … and, for the corrected hint, the kernel corrector's file name
