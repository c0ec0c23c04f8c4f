"""Engine throughput (MP/s) at 720p, 1080p and 12 MP: ONNX Runtime (the served Engine) vs the same weights in TF.

    python -m bench.engine [--model M] [--weights W --config C] [--threads 1,2] [--repeats 3]

Why one subprocess per thread count: TensorFlow fixes its thread pools when it starts, so 1 and 2
threads cannot be measured in one process. Inside a worker both runtimes get the same thread count,
the same picture, the same TilePlan (default tile settings) and the same blending (service.tiling):
TF runs each batch of tiles through a graph-mode tf.function, ORT through Engine.deblur. The two are
timed round-robin and their outputs compared (max |ORT − TF|) to prove the weights are the same.
A third runner, `ORT tf2onnx`, is the same weights converted by tf2onnx (`deblur-export --tf2onnx`):
it measures what the direct NCHW export (training/nets/nafunet_onnx.py) gains over the stock converter.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    REPO,
    SIZES,
    Report,
    Table,
    base_parser,
    finish,
    interleaved,
    measure,
    require_model,
    synthetic_photo,
)

QUICK_SIZES = {"quick 192x256": (192, 256), "quick 300x420": (300, 420)}
MARK = "BENCH_JSON "


def tile_defaults() -> dict[str, int]:
    """The service's default tile settings (the field defaults, not this shell's DEBLUR_* variables)."""
    from service.settings import Settings

    return {k: Settings.model_fields[k].default for k in ("tile_size", "tile_overlap", "tile_batch")}


def make_engine(model: Path, threads: int, provider: str = "cpu", **tiles: int | None) -> Any:
    from service.engine import Engine

    settings = tile_defaults()
    settings.update({k: v for k, v in tiles.items() if v is not None})
    return Engine(model, providers=[provider], threads=threads, tile_size=settings["tile_size"],
                  tile_overlap=settings["tile_overlap"], tile_batch=settings["tile_batch"])


def keras_runner(config: Path, weights: Path, threads: int) -> tuple[Any, Any]:
    """(the generator in TF/Keras as [N,H,W,3] numpy → numpy in graph mode, the Keras model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from training.config import Config
    from training.nets import build_generator

    generator = build_generator(Config.load(config))
    generator.load_weights(weights)
    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return (lambda batch: call(tf.constant(batch)).numpy()), generator


def tf2onnx_engine(generator: Any, threads: int, **tiles: int | None) -> Any:
    """The same Keras weights through tf2onnx, served by the same Engine (the file is read once, then removed)."""
    import tempfile

    import onnx

    from training.export import tf2onnx_graph

    model = tf2onnx_graph(generator)
    onnx.helper.set_model_props(model, {"name": "tf2onnx", "version": "bench",
                                        "size_multiple": str(generator.size_multiple)})
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, Path(tmp) / "tf2onnx.onnx")
        return make_engine(Path(tmp) / "tf2onnx.onnx", threads, **tiles)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in a child process with one thread count; returns the rows as JSON-able data."""
    from service.tiling import run_tiled

    threads = args.worker_threads
    tiles = {"tile_size": args.tile, "tile_overlap": args.overlap, "tile_batch": args.batch}
    engine = make_engine(args.model, threads, **tiles)
    tf_run, generator = keras_runner(args.config, args.weights, threads) if args.tf else (None, None)
    stock = tf2onnx_engine(generator, threads, **tiles) if generator is not None else None
    sizes = QUICK_SIZES if args.quick else {k: SIZES[k] for k in args.sizes.split(",")}
    repeats = 1 if args.quick else args.repeats
    if tf_run is not None:  # like Engine.warmup: trace/tune the full batch and the single-tile shape up front
        for n in sorted({engine.tile_batch, 1}):
            tf_run(np.zeros((n, engine.tile_size, engine.tile_size, 3), np.float32))
    rows = []
    for i, (label, (h, w)) in enumerate(sizes.items()):
        img = synthetic_photo(h, w)
        plan = engine.plan(h, w)
        outs: dict[str, np.ndarray] = {}
        fns = {"ort": lambda img=img, outs=outs: outs.__setitem__("ort", engine.deblur(img).image)}
        if tf_run is not None:
            fns["tf"] = lambda img=img, plan=plan, outs=outs: outs.__setitem__(
                "tf", np.clip(run_tiled(img, tf_run, plan, engine.tile_batch), 0.0, 1.0))
            fns["stock"] = lambda img=img: stock.deblur(img)
        warmup = 1 if i == 0 else 0  # same tile shapes at every size: one untimed pass is enough
        times = interleaved(fns, repeats, warmup) if tf_run else {"ort": measure(fns["ort"], repeats, warmup)}
        row = {"label": label, "h": h, "w": w, "tiles": len(plan), "threads": threads,
               "ort": times["ort"].values, "tf": times["tf"].values if "tf" in times else None,
               "stock": times["stock"].values if "stock" in times else None}
        if "tf" in outs:
            row["max_diff"] = float(np.max(np.abs(outs["ort"] - outs["tf"])))
        rows.append(row)
    tiles = {"tile": engine.tile_size, "overlap": engine.tile_overlap, "batch": engine.tile_batch}
    return {"rows": rows, "tiles": tiles, "provider": engine.provider}


def spawn(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.engine", "--worker-threads", str(threads), "--model", str(args.model),
           "--repeats", str(args.repeats), "--sizes", args.sizes, "--config", str(args.config),
           "--weights", str(args.weights)]
    cmd += ["--quick"] * args.quick + ["--no-tf"] * (not args.tf)
    cmd += [x for k in ("tile", "overlap", "batch") if getattr(args, k) for x in (f"--{k}", str(getattr(args, k)))]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not lines:
        sys.exit(f"bench.engine: worker for {threads} thread(s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


def run(args: argparse.Namespace) -> Report:
    require_model(args)
    if args.tf and not args.weights.is_file():
        print(f"bench.engine: no Keras weights at {args.weights}; TF comparison skipped (pass --weights)")
        args.tf = False
    results = [spawn(args, int(t)) for t in str(args.threads).split(",")]
    table = Table(["image", "MP", "tiles", "threads", "ORT s", "ORT min–max", "ORT MP/s", "TF s", "TF MP/s",
                   "TF/ORT", "ORT tf2onnx s", "tf2onnx/direct", "max abs ORT−TF"])
    summary = []
    labels = [r["label"] for r in results[0]["rows"]]
    headline = "720p" if "720p" in labels else labels[-1]  # the 720p target row (a stand-in when --quick)
    for res in results:
        for r in res["rows"]:
            mp = r["h"] * r["w"] / 1e6
            ort_s = float(np.median(r["ort"]))
            tf_s = float(np.median(r["tf"])) if r["tf"] else float("nan")
            stock_s = float(np.median(r["stock"])) if r.get("stock") else float("nan")
            table.add(f"{r['label']} ({r['w']}×{r['h']})", mp, r["tiles"], r["threads"], ort_s,
                      f"{min(r['ort']):.3f}–{max(r['ort']):.3f}", mp / ort_s, tf_s, mp / tf_s, tf_s / ort_s,
                      stock_s, stock_s / ort_s, r.get("max_diff", float("nan")))
            if r["label"] == headline and r["threads"] == results[-1]["rows"][0]["threads"]:
                summary.append((f"{headline} frame, ORT, {r['threads']} threads", f"{ort_s:.3f} s",
                                "≤ 1.0 s (stretch ≤ 0.5 s)" if headline == "720p" else "-"))
                if r["tf"]:
                    summary.append((f"ORT speed-up over TF/Keras, {headline}, {r['threads']} threads",
                                    f"{tf_s / ort_s:.2f}×", "≥ 1.5×"))
                    summary.append((f"direct NCHW export vs tf2onnx, {headline}, {r['threads']} threads",
                                    f"{stock_s / ort_s:.2f}× faster", "-"))
    worst = max((r.get("max_diff", 0.0) for res in results for r in res["rows"]), default=0.0)
    t = results[0]["tiles"]
    n = len(results[0]["rows"][0]["ort"])
    body = (f"Provider {results[0]['provider']}; tiles {t['tile']} px, overlap {t['overlap']}, batch {t['batch']} "
            f"(the service defaults unless overridden). TF/Keras: the same weights, graph-mode `tf.function`, "
            f"**tiled with the same plan and blending** as the engine; intra/inter-op threads = the ORT thread "
            f"count. `ORT tf2onnx`: the same weights converted by tf2onnx instead of the direct NCHW graph, "
            f"same Engine. "
            f"Times are whole-image wall seconds, median of {n}, all runners interleaved in one process.\n\n"
            + table.markdown())
    if worst > 1e-3:
        body += (f"\n\n**Warning: ORT and TF outputs differ by up to {worst:.3g}: the Keras weights are not the "
                 f"weights of this ONNX file, so the ratio compares different models.**")
    return Report("engine", "Engine throughput: ONNX Runtime vs TF/Keras (same weights)", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("engine", __doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma list of intra-op thread counts")
    p.add_argument("--sizes", default="720p,1080p,12MP", help=f"comma list from {', '.join(SIZES)}")
    p.add_argument("--weights", type=Path, default=REPO / "models" / "generator.weights.h5")
    p.add_argument("--config", type=Path, default=REPO / "models" / "train-config.json")
    p.add_argument("--no-tf", dest="tf", action="store_false", help="ONNX Runtime only")
    p.add_argument("--tile", type=int, help="tile size (default: the service default)")
    p.add_argument("--overlap", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> Report | None:
    args = parser().parse_args(argv)
    if args.worker_threads:
        print(MARK + json.dumps(worker(args)), flush=True)
        return None
    return finish(run(args), args)


if __name__ == "__main__":
    main()
