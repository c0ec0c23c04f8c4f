"""`deblur-export`: Keras generator → the served ONNX file, refused unless ONNX Runtime agrees with TF.

    deblur-export --run-dir runs/phase2 --out models/deblur-generator.onnx --version 1.0.0

The NAF U-Net is written straight into an NCHW graph (training/nets/nafunet_onnx.py); `--tf2onnx` converts
it with tf2onnx instead (the only path for other generators).

The contract (docs/model-contract.md): input `blurry`, output `sharp`, float32 NHWC RGB in [0, 1] with dynamic
N/H/W, opset ≥ 17, and metadata_props carrying name, version, size multiple, normalisation and a
training summary. Parity is checked on random inputs of two sizes, one of them not a multiple of
the size multiple (so the in-graph padding is exercised); over `tolerance` the file is not written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

from service.contract import DTYPE, DYNAMIC_DIMS, INPUT_NAME, LAYOUT, NORMALISATION, OPSET, OUTPUT_NAME, Meta
from training.config import Config
from training.nets import build_generator
from training.nets.nafunet import is_nafunet
from training.nets.nafunet_onnx import nafunet_to_onnx

PARITY_SHAPES = ((1, 64, 96), (2, 77, 131))  # N, H, W; the channels are the generator's


class ParityError(RuntimeError):
    """ONNX Runtime's output differs from TensorFlow's: the exported file would not be the model."""


def to_onnx(generator: keras.Model, opset: int = OPSET, direct: bool = True) -> onnx.ModelProto:
    """The NAF U-Net is written directly as an NCHW graph (nets.nafunet_onnx); others go through tf2onnx."""
    if direct and is_nafunet(generator):
        return nafunet_to_onnx(generator, opset)
    return tf2onnx_graph(generator, opset)


def tf2onnx_graph(generator: keras.Model, opset: int = OPSET) -> onnx.ModelProto:
    channels = generator.inputs[0].shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], DTYPE, name=INPUT_NAME)])
    def serve(blurry):
        return {OUTPUT_NAME: generator(blurry, training=False)}

    model, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=opset)
    return model


def check_parity(reference: Callable[[np.ndarray], np.ndarray], model: onnx.ModelProto, tolerance: float = 1e-4,
                 seed: int = 0) -> float:
    """Max |TF − ORT| over random inputs; raises ParityError above `tolerance`."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    channels = session.get_inputs()[0].shape[3]
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in PARITY_SHAPES:
        x = rng.random((*shape, channels), dtype=np.float32)
        expected = np.asarray(reference(x))
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        if got.shape != expected.shape:
            raise ParityError(f"ONNX output shape {got.shape} != TF output shape {expected.shape} for input {shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if worst > tolerance:
        raise ParityError(f"ONNX Runtime differs from TensorFlow by {worst:.3g} (> {tolerance:g}); file not written")
    return worst


def export_generator(generator: keras.Model, out: Path, metadata: dict[str, str], opset: int = OPSET,
                     tolerance: float = 1e-4, reference: Callable[[np.ndarray], np.ndarray] | None = None,
                     simplify: bool = False, direct: bool = True) -> float:
    """Convert, stamp metadata, check parity, then write atomically. Returns the max parity error."""
    model = to_onnx(generator, opset, direct)
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    for tensor in (model.graph.input[0], model.graph.output[0]):
        for dim, name in zip(tensor.type.tensor_type.shape.dim, DYNAMIC_DIMS, strict=False):
            dim.dim_param = name
    meta = {Meta.SIZE_MULTIPLE: str(getattr(generator, "size_multiple", 1)), Meta.NORMALISATION: NORMALISATION,
            Meta.LAYOUT: LAYOUT, **metadata}
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    error = check_parity(reference or (lambda x: generator(x, training=False).numpy()), model, tolerance)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx.tmp", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile is 0600; the server may run as another user
    os.replace(tmp.name, out)
    return error


def place_beside(file: Path, out: Path, role: str) -> str:
    """Copy a hinted model's guide or corrector beside `out` (the service finds it there) → its file name."""
    if not file.is_file():
        raise ValueError(f"{role} {file} does not exist")
    target = out.parent / file.name
    if target.resolve() == out.resolve():
        raise ValueError(f"the {role} {file} would be overwritten by --out {out}: give --out another file name")
    if target.resolve() != file.resolve():
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    return file.name


def hint_metadata(cfg: Config, out: Path, guide: Path) -> dict[str, str]:
    """The hint's metadata keys, with the files they name copied beside `out`."""
    metadata = {Meta.HINT: cfg.hint, Meta.HINT_GUIDE: place_beside(guide, out, "guide model")}
    if cfg.hint_corrector:
        metadata[Meta.HINT_CORRECTOR] = place_beside(Path(cfg.hint_corrector), out, "kernel corrector")
    return metadata


def load_generator(config: Path, weights: Path) -> tuple[keras.Model, Config]:
    cfg = Config.load(config)
    generator = build_generator(cfg)
    generator.load_weights(weights)
    return generator, cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export the trained generator to ONNX (parity-checked).")
    parser.add_argument("--run-dir", type=Path, help="training run folder (config.json + generator.weights.h5)")
    parser.add_argument("--config", type=Path, help="config JSON (default: RUN_DIR/config.json)")
    parser.add_argument("--weights", type=Path, help="Keras weights (default: RUN_DIR/generator.weights.h5)")
    parser.add_argument("--out", type=Path, default=Path("models/deblur-generator.onnx"))
    parser.add_argument("--name", default="deblur-nafunet")
    parser.add_argument("--version", default="0.0.0-dev")
    parser.add_argument("--summary", default="", help="one-line training summary for the metadata")
    parser.add_argument("--metrics", type=Path, help="JSON file of validation metrics to embed (from deblur-eval)")
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--simplify", action="store_true", help="run onnxslim on the graph (needs onnxslim)")
    parser.add_argument("--guide", help="a hinted run's guide model (default: the config's hint_guide); copied "
                        "beside --out, which names it in its metadata")
    parser.add_argument("--tf2onnx", action="store_true",
                        help="convert with tf2onnx even for the NAF U-Net (default: the direct NCHW graph)")
    args = parser.parse_args(argv)
    config = args.config or (args.run_dir / "config.json" if args.run_dir else None)
    weights = args.weights or (args.run_dir / "generator.weights.h5" if args.run_dir else None)
    if not config or not weights:
        parser.error("give --run-dir, or both --config and --weights")
    for path in (config, weights) + ((args.metrics,) if args.metrics else ()):
        if not path.is_file():
            print(f"deblur-export: {path} does not exist", file=sys.stderr)
            return 2
    generator, cfg = load_generator(config, weights)
    metadata = {Meta.NAME: args.name, Meta.VERSION: args.version, Meta.TRAINED: "true",
                Meta.ARCHITECTURE: f"{cfg.generator} width={cfg.width} enc={list(cfg.enc_blocks)} "
                                f"mid={cfg.mid_blocks} dec={list(cfg.dec_blocks)}"
                                + (f" kernels={list(cfg.kernel_sizes)}" if cfg.kernel_sizes else ""),
                Meta.TRAINING: args.summary
                or f"{cfg.steps} steps, batch {cfg.batch}x{cfg.crop}^2, see models/README.md"}
    if args.metrics:
        metadata[Meta.METRICS] = json.dumps(json.loads(args.metrics.read_text()))
    if cfg.hint:
        try:
            metadata.update(hint_metadata(cfg, args.out, Path(args.guide or cfg.hint_guide)))
        except ValueError as exc:
            print(f"deblur-export: {exc}", file=sys.stderr)
            return 2
    try:
        error = export_generator(generator, args.out, metadata, args.opset, args.tolerance, simplify=args.simplify,
                                 direct=not args.tf2onnx)
    except ParityError as exc:
        print(f"deblur-export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (parity max abs error {error:.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
