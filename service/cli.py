"""`deblur IN... [-o OUT]`: deblur files, folders and globs offline with the API's exact code path.

Outputs: without -o, `NAME-deblurred.EXT` next to each input; with -o and a single input file whose
OUT has an image extension, that file; otherwise OUT is a folder mirroring the inputs' layout.
Existing outputs are skipped unless --overwrite. Exit status: 0 all done, 1 some failed, 2 bad usage/model.
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .engine import Engine, ModelError
from .images import ImageError, probe_size
from .pipeline import process_bytes
from .settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".tif", ".tiff"}
SUFFIX_FORMAT = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".webp": "webp"}
FORMAT_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


@dataclass
class Job:
    src: Path
    base: Path  # folder the relative output path is computed from


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deblur", description="Deblur images with the served ONNX model.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", type=Path, help="output file (single input) or folder")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--format", choices=["png", "jpeg", "webp"], help="output format (default: input's)")
    p.add_argument("--quality", type=int, choices=range(1, 101), metavar="1-100", help="JPEG/WebP quality")
    p.add_argument("--model", type=Path, help="ONNX model (default: DEBLUR_MODEL_PATH or models/…)")
    p.add_argument("--provider", help="execution providers, e.g. cpu or cuda,cpu (default: DEBLUR_PROVIDERS)")
    p.add_argument("--tile", type=int, help="tile size in pixels (default: DEBLUR_TILE_SIZE)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default: DEBLUR_TILE_OVERLAP)")
    p.add_argument("--batch", type=int, help="tiles per model call (default: DEBLUR_TILE_BATCH)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def collect(inputs: list[str], recursive: bool) -> tuple[list[Job], list[str]]:
    """Expand files, folders and globs into jobs (sorted, de-duplicated); also return unmatched args."""
    jobs: dict[Path, Job] = {}
    missing: list[str] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            for f in sorted(found):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    jobs.setdefault(f.resolve(), Job(f, path))
        elif path.is_file():
            jobs.setdefault(path.resolve(), Job(path, path.parent))
        elif glob.has_magic(arg):
            matches = [Path(m) for m in sorted(glob.glob(arg, recursive=recursive)) if Path(m).is_file()]
            for f in matches:
                jobs.setdefault(f.resolve(), Job(f, f.parent))
            if not matches:
                missing.append(arg)
        else:
            missing.append(arg)
    return list(jobs.values()), missing


def target(job: Job, fmt: str, output: Path | None, single: bool) -> Path:
    if output is None:
        return job.src.with_name(f"{job.src.stem}-deblurred{FORMAT_SUFFIX[fmt]}")
    if single and output.suffix.lower() in IMAGE_SUFFIXES:
        return output
    rel = job.src.relative_to(job.base) if job.src.is_relative_to(job.base) else Path(job.src.name)
    return (output / rel).with_suffix(FORMAT_SUFFIX[fmt])


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="deblur: %(message)s")
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        print(f"deblur: invalid DEBLUR_* settings: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    overrides = {
        k: v
        for k, v in {"tile_size": args.tile, "tile_overlap": args.overlap, "tile_batch": args.batch}.items()
        if v is not None
    }
    if args.provider:
        overrides["providers"] = [p.strip() for p in args.provider.split(",") if p.strip()]
    try:
        model = args.model or settings.resolved_model_path()
        engine = Engine(model, **{**_engine_defaults(settings), **overrides})
    except (ModelError, ValueError) as exc:
        print(f"deblur: {exc}", file=sys.stderr)
        return 2
    jobs, missing = collect(args.inputs, args.recursive)
    failures = [f"{m}: no such file, folder or matching image" for m in missing]
    single = len(args.inputs) == 1 and len(jobs) == 1 and Path(args.inputs[0]).is_file()
    sizes = {job.src: probe_size(job.src) or (0, 0) for job in jobs}
    total = sum(w * h for w, h in sizes.values())
    done = skipped = 0
    megapixels = 0.0
    start = time.perf_counter()
    with tqdm(total=total, unit="px", unit_scale=True, disable=args.quiet, file=sys.stderr) as bar:
        for job in jobs:
            w, h = sizes[job.src]
            predicted = args.format or SUFFIX_FORMAT.get(job.src.suffix.lower(), "png")
            out = target(job, predicted, args.output, single)
            if out.exists() and not args.overwrite:
                skipped += 1
                bar.update(w * h)
                continue
            per_tile = w * h / max(1, len(engine.plan(max(h, 1), max(w, 1))))
            before = bar.n
            try:
                result = process_bytes(
                    engine,
                    job.src.read_bytes(),
                    fmt=args.format,
                    quality=args.quality,
                    max_megapixels=settings.max_megapixels,
                    on_progress=lambda n, pt=per_tile: bar.update(n * pt),
                )
                out = target(job, result.encoded.format, args.output, single)
                if out.resolve() == job.src.resolve():
                    raise ImageError("output would overwrite the input; choose another -o")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(result.encoded.data)
                done += 1
                megapixels += result.megapixels
            except (ImageError, OSError) as exc:
                failures.append(f"{job.src}: {exc}")
            bar.update(before + w * h - bar.n)
    elapsed = time.perf_counter() - start
    for line in failures:
        print(f"deblur: FAILED {line}", file=sys.stderr)
    print(
        f"deblurred {done} image{'s' * (done != 1)} ({megapixels:.1f} MP) in {elapsed:.1f} s on "
        f"{engine.provider}; {len(failures)} failed; {skipped} skipped (exists; use --overwrite)",
        file=sys.stderr,
    )
    return 1 if failures else 0


def _engine_defaults(settings: Settings) -> dict[str, object]:
    return {
        "providers": settings.provider_list,
        "tile_size": settings.tile_size,
        "tile_overlap": settings.tile_overlap,
        "tile_batch": settings.tile_batch,
        "threads": settings.threads,
    }


if __name__ == "__main__":
    sys.exit(main())
