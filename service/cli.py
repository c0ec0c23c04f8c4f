"""`deblur IN... [-o OUT]`: deblur files, folders and globs offline with the API's exact code path.

Why it mirrors the API: same Engine, same tiling, same `process_bytes`, so a photo deblurred here is
byte-identical to what `POST /deblur` answers with the same settings (format, EXIF/ICC, alpha kept).

Outputs: without -o, `NAME-deblurred.EXT` next to each input (the API's download name); `-o FILE` with
an image extension when there is exactly one input (its extension picks the format); otherwise `-o` is a
folder mirroring the inputs' layout below each folder or glob. Existing outputs are skipped unless
--overwrite. Exit status: 0 all done, 1 some input failed, 2 bad usage or model, 130 interrupted.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .engine import Engine, ModelError
from .images import IMAGE_SUFFIXES, SUPPORTED_TEXT, ImageError, normalise_format, probe_size
from .pipeline import Deblur, LocalDeblur
from .remote import RemoteDeblur, ServerUnusable
from .settings import Settings, parse_providers

SUFFIX_FORMAT = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".webp": "webp"}
FORMAT_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
SUFFIX = "-deblurred"
# What one bad input may raise (InferenceError is a RuntimeError); anything else is a bug: traceback.
INPUT_ERRORS = (ImageError, OSError, RuntimeError, ValueError, MemoryError)


class UsageError(Exception):
    """Bad arguments: reported in one line, exit status 2."""


@dataclass
class Job:
    src: Path
    base: Path  # folder the output's relative path is computed from


@dataclass
class Outcome:
    done: int = 0
    skipped: int = 0
    megapixels: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _count(kind: str, minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{kind} must be at least {minimum}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deblur",
        description="Deblur photos offline with the served ONNX model (same engine and tiling as the API).",
        epilog="Settings not given here come from DEBLUR_* environment variables, as for the server.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or glob patterns (quoted or not)")
    p.add_argument("-o", "--output", type=Path, help="output file (one input) or folder (default: beside input)")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    p.add_argument("--format", type=normalise_format, help="png, jpeg or webp (default: the input's, else png)")
    p.add_argument("--quality", type=int, choices=range(1, 101), metavar="1-100", help="JPEG/WebP quality")
    p.add_argument("--model", type=Path, help="ONNX model (default: DEBLUR_MODEL_PATH or models/…)")
    p.add_argument("--provider", help="execution providers in order, e.g. cpu or cuda,cpu (DEBLUR_PROVIDERS)")
    p.add_argument("--tile", type=_count("--tile", 16), help="tile size in pixels (DEBLUR_TILE_SIZE)")
    p.add_argument("--overlap", type=_count("--overlap", 0), help="tile overlap in pixels (DEBLUR_TILE_OVERLAP)")
    p.add_argument("--batch", type=_count("--batch", 1), help="tiles per model call (DEBLUR_TILE_BATCH)")
    p.add_argument("--threads", type=_count("--threads", 0), help="ONNX Runtime threads, 0 = auto (DEBLUR_THREADS)")
    p.add_argument("--server", metavar="URL", help="deblur on a running service (its jobs API), e.g. http://host:8000")
    p.add_argument("--api-key", default=os.environ.get("DEBLUR_API_KEY"), help="--server's API key (DEBLUR_API_KEY)")
    p.add_argument("--retries", type=_count("--retries", 0), default=30, help="--server: times to retry a 503 (30)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _glob_base(pattern: str) -> Path:
    """The pattern's leading folders without wildcards: outputs mirror the layout below it."""
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _wanted(f: Path, exclude: Path | None) -> bool:
    """An image file that is not one of our own earlier outputs."""
    if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    return not f.resolve().is_relative_to(exclude) if exclude is not None else not f.stem.endswith(SUFFIX)


def _images_in(folder: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    return [f for f in sorted(folder.rglob("*") if recursive else folder.iterdir()) if _wanted(f, exclude)]


def collect(inputs: list[str], recursive: bool, output: Path | None = None) -> tuple[list[Job], list[str]]:
    """Expand files, folders and globs (here, so quoted patterns work too) into de-duplicated jobs.

    Folders and globs skip what earlier runs wrote (`*-deblurred.*`, or anything inside the -o folder);
    a file named explicitly is always taken. Also returns one problem line per argument that gave nothing.
    """
    exclude = output.resolve() if output is not None and output.suffix.lower() not in IMAGE_SUFFIXES else None
    jobs: dict[Path, Job] = {}
    problems: list[str] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_file():
            jobs.setdefault(path.resolve(), Job(path, path.parent))
            continue
        if path.is_dir():
            found = [Job(f, path) for f in _images_in(path, recursive, exclude)]
            why = f"no {SUPPORTED_TEXT} images in this folder" + ("" if recursive else " (use -r for sub-folders)")
        elif glob.has_magic(arg):
            base, found = _glob_base(arg), []
            for m in map(Path, sorted(glob.glob(arg, recursive=True))):
                if m.is_dir():
                    found += [Job(f, base) for f in _images_in(m, recursive, exclude)]
                elif _wanted(m, exclude):
                    found.append(Job(m, base))
            why = "the pattern matches no images"
        else:
            problems.append(f"{arg}: no such file or folder")
            continue
        if not found:
            problems.append(f"{arg}: {why}")
        for job in found:
            jobs.setdefault(job.src.resolve(), job)
    return list(jobs.values()), problems


def output_file_format(output: Path | None, jobs: list[Job], fmt: str | None) -> str | None:
    """If -o names one image file, check that and return the format its extension asks for."""
    if output is None or output.is_dir() or output.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    if len(jobs) != 1:
        raise UsageError(f"-o {output} is a file name but there are {len(jobs)} inputs; give a folder")
    wanted = SUFFIX_FORMAT.get(output.suffix.lower())
    if wanted is None:
        raise UsageError(f"-o {output}: can write .png, .jpg or .webp files")
    if fmt is not None and fmt != wanted:
        raise UsageError(f"-o {output} asks for {wanted} but --format is {fmt}")
    return wanted


def target(job: Job, fmt: str, output: Path | None, single: bool) -> Path:
    """Where the result of `job` goes, written as `fmt`."""
    if output is None:
        return job.src.with_name(f"{job.src.stem}{SUFFIX}{FORMAT_SUFFIX[fmt]}")
    if single:
        return output if SUFFIX_FORMAT.get(output.suffix.lower()) == fmt else output.with_suffix(FORMAT_SUFFIX[fmt])
    rel = job.src.relative_to(job.base) if job.src.is_relative_to(job.base) else Path(job.src.name)
    return (output / rel).with_suffix(FORMAT_SUFFIX[fmt])


def _engine(args: argparse.Namespace, settings: Settings) -> Engine:
    """The DEBLUR_* settings, with the command line's options taking precedence."""
    overrides = {
        "tile_size": args.tile,
        "tile_overlap": args.overlap,
        "tile_batch": args.batch,
        "threads": args.threads,
    }
    kwargs: dict[str, object] = {k: v for k, v in overrides.items() if v is not None}
    if args.provider:
        kwargs["providers"] = parse_providers(args.provider)
    return Engine.from_settings(settings, **kwargs)


def _deblurrer(args: argparse.Namespace, settings: Settings) -> LocalDeblur | RemoteDeblur:
    """A local engine, or with --server the service's jobs API (then the engine options are the server's)."""
    if not args.server:
        return LocalDeblur(_engine(args, settings), settings)
    local = [f"--{n}" for n in ("model", "provider", "tile", "overlap", "batch", "threads") if getattr(args, n)]
    if local:
        raise UsageError(f"{', '.join(local)}: with --server the server's own settings apply")
    remote = RemoteDeblur(args.server, args.api_key, args.retries)
    remote.check()
    return remote


def _not_the_input(dest: Path, src: Path) -> None:
    if dest.resolve() == src.resolve():
        raise UsageError(f"the output would replace the input ({dest}); choose another -o")


def run(jobs: list[Job], deblur: Deblur, args: argparse.Namespace, out: Outcome) -> None:
    """Deblur every job, recording each result in `out`; one bad input never stops the others."""
    file_fmt = output_file_format(args.output, jobs, args.format)
    single = file_fmt is not None
    sizes = {job.src: probe_size(job.src) or (0, 0) for job in jobs}  # headers only: the bar's total
    written: dict[Path, Path] = {}
    with tqdm(total=sum(w * h for w, h in sizes.values()), unit="px", unit_scale=True, disable=args.quiet) as bar:
        for job in jobs:
            w, h = sizes[job.src]
            end = bar.n + w * h
            fmt = file_fmt or args.format
            predicted = target(job, fmt or SUFFIX_FORMAT.get(job.src.suffix.lower(), "png"), args.output, single)
            try:
                _not_the_input(predicted, job.src)
                if predicted.exists() and not args.overwrite and predicted not in written:
                    out.skipped += 1
                    out.notes.append(f"skipped {job.src}: {predicted} exists (use --overwrite)")
                    continue
                def advance(done: int, total: int, start: float = bar.n, px: int = w * h) -> None:
                    bar.update(start + px * done / max(total, 1) - bar.n)

                result = deblur(job.src.read_bytes(), job.src.name, fmt, args.quality, advance)
                dest = target(job, result.encoded.format, args.output, single)
                _not_the_input(dest, job.src)
                if dest != predicted and dest.exists() and not args.overwrite and dest not in written:
                    out.skipped += 1  # a format fallback (e.g. alpha → PNG) led to an existing output
                    out.notes.append(f"skipped {job.src}: {dest} exists (use --overwrite)")
                    continue
                if dest in written:
                    raise UsageError(f"{written[dest]} is also written to {dest}; rename one or use another -o")
                if result.encoded.fallback:
                    out.notes.append(f"{job.src}: {result.encoded.fallback} ({dest})")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(result.encoded.data)
                written[dest] = job.src
                out.done += 1
                out.megapixels += result.megapixels
            except (UsageError, *INPUT_ERRORS) as exc:
                out.failures.append(f"{job.src}: {str(exc) or type(exc).__name__}")
            finally:
                bar.update(end - bar.n)


def main(argv: list[str] | None = None) -> int:
    """Console script `deblur`; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="deblur: %(message)s")
    try:
        settings = Settings(**({"model_path": args.model} if args.model else {}))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        print(f"deblur: invalid DEBLUR_* settings: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    jobs, problems = collect(args.inputs, args.recursive, args.output)
    out = Outcome(failures=problems)
    start = time.perf_counter()
    status, deblur = None, None
    try:
        output_file_format(args.output, jobs, args.format)
        deblur = _deblurrer(args, settings)  # even with nothing to do: a bad model is news worth hearing
        run(jobs, deblur, args, out)
    except (UsageError, ModelError, ServerUnusable) as exc:
        print(f"deblur: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        status = 130
    for line in out.notes:
        print(f"deblur: {line}", file=sys.stderr)
    for line in out.failures:
        print(f"deblur: FAILED {line}", file=sys.stderr)
    where = f" on {deblur.where}" if deblur is not None else ""
    print(
        f"deblurred {out.done} image{'s' * (out.done != 1)} ({out.megapixels:.1f} MP) in "
        f"{time.perf_counter() - start:.1f} s{where}; {len(out.failures)} failed; {out.skipped} skipped"
        + (" (outputs exist; use --overwrite)" if out.skipped else "")
        + ("; interrupted" if status == 130 else ""),
        file=sys.stderr,
    )
    return status or (1 if out.failures else 0)


if __name__ == "__main__":
    sys.exit(main())
