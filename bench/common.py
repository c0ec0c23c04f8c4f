"""What every benchmark shares: machine description, median timing, tables, Markdown results, test pictures.

Why medians of interleaved runs: the machines are noisy (a 2-core box often has a training run beside
it), so every number is the median of N runs, and the two sides of a ratio are timed round-robin in
the same process so that a burst of noise hits both.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "deblur-generator.onnx"
DEFAULT_RESULTS = REPO / "bench" / "RESULTS.md"
PACKAGES = ("onnxruntime-gpu", "onnxruntime", "numpy", "tensorflow", "keras", "pillow", "fastapi", "uvicorn")
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "12MP": (3000, 4000), "2MP": (1152, 1728), "24MP": (4000, 6000)}


# ---------------------------------------------------------------- machine, command, model


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Installed versions read from the package metadata (importing tensorflow just for this is slow)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5)
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """Everything a reader needs to judge a number: CPU, cores, memory, load, versions, the exact command."""
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    env = {k: v for k, v in os.environ.items() if re.match(r"(DEBLUR_|OPENBLAS_|OMP_|MKL_|TF_NUM)", k)}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions(),
        "git": git_revision(),
        "env": env,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
    }


def model_info(path: Path) -> dict[str, str]:
    """Name/version from the ONNX metadata and the file's sha256 prefix, without building a session."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "name": meta.get("name", path.stem), "version": meta.get("version", "?"),
            "trained": meta.get("trained", "?"), "sha256": digest[:12]}


def header_markdown(info: dict[str, Any], model: dict[str, str] | None = None) -> str:
    lines = [
        f"- machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['memory_gib']} GiB, load average at start {info['load_average']}",
        f"- software: Python {info['python']}, {info['os']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- code: git {info['git']}; command: `{info['command']}`",
    ]
    if info["env"]:
        lines.append("- environment: " + ", ".join(f"{k}={v}" for k, v in sorted(info["env"].items())))
    if model:
        lines.append(f"- model: {model['path']} ({model['name']} {model['version']}, trained={model['trained']}, "
                     f"sha256 {model['sha256']})")
    return "\n".join(lines)


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    """Seconds of N runs; `median` is the number quoted."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> str:
        """min–max, so a reader sees how noisy the median is."""
        return f"{min(self.values):.3f}–{max(self.values):.3f}" if self.values else "-"


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Median-of-N wall time of fn() after `warmup` untimed calls."""
    return interleaved({"x": fn}, repeats, warmup)["x"]


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time several functions round-robin (a, b, a, b, ...) so slow phases of a noisy machine hit each alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    timings = {name: Timing() for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            timings[name].values.append(time.perf_counter() - start)
    return timings


# ---------------------------------------------------------------- tables and results


def fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if value in (float("inf"), float("-inf")):
            return "inf"
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
    return str(value)


@dataclass
class Table:
    """A GitHub pipe table that also reads well in a terminal (columns padded)."""

    headers: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([fmt(c) for c in cells])

    def markdown(self) -> str:
        cols = [list(map(str, self.headers)), *self.rows]
        widths = [max(len(r[i]) for r in cols) for i in range(len(self.headers))]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
        return "\n".join([line(cols[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, self.rows)])


@dataclass
class Report:
    """One benchmark's outcome: its Markdown section and the few headline rows for the combined table."""

    key: str
    title: str
    body: str
    summary: list[tuple[str, str, str]] = field(default_factory=list)  # (metric, value, target)

    def markdown(self, header: str) -> str:
        return f"## {self.title}\n\n{header}\n\n{self.body}\n"


def write_section(path: Path, key: str, text: str, first: bool = False) -> None:
    """Replace this benchmark's section of the results file (between markers), or add it (at the end, or
    before every other section when `first`)."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.is_file() else (
        "# Benchmark results\n\nWritten by `python -m bench` (see docs/benchmarks.md). Each section names the "
        "machine, versions and exact command that produced it; medians of N runs, ratios from the same run.\n\n")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    elif first and "<!-- bench:" in old:
        at = old.index("<!-- bench:")
        new = old[:at] + block + "\n" + old[at:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (default: the shipped one)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the median is quoted")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat: a smoke run, not a result")
    p.add_argument("--markdown", type=Path, nargs="?", const=DEFAULT_RESULTS, metavar="FILE",
                   help=f"write this benchmark's section into FILE (default {DEFAULT_RESULTS.relative_to(REPO)})")
    return p


def finish(report: Report, args: argparse.Namespace) -> Report:
    """Print the section (machine header + tables) and write it to the results file if asked."""
    info = machine_info()
    model = model_info(args.model) if args.model.is_file() else None
    text = report.markdown(header_markdown(info, model) + ("\n- **--quick smoke run: not a result**" * args.quick))
    print(text, flush=True)
    if args.markdown:
        write_section(args.markdown, report.key, text)
        print(f"(written to {args.markdown})")
    return report


def require_model(args: argparse.Namespace) -> None:
    if not args.model.is_file():
        sys.exit(f"bench: model {args.model} not found; pass --model PATH (e.g. an export of training/)")


# ---------------------------------------------------------------- pictures and quality


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like H×W×3 float32 picture: smooth shading, hard edges, fine texture.

    Speed does not depend on content, but the tiled-vs-whole PSNR does, so it must have edges and detail.
    """
    rng = np.random.default_rng(seed)
    y = (np.arange(height, dtype=np.float32) / max(height, 1))[:, None]  # separable shading: no H×W grids
    x = (np.arange(width, dtype=np.float32) / max(width, 1))[None, :]
    img = np.empty((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = 0.5 + 0.4 * np.sin(3 * x + c) * np.cos(2 * y - c)
    for _ in range(40):  # hard-edged discs of random colour, each drawn inside its bounding box only
        cy, cx, r = int(rng.random() * height), int(rng.random() * width), int((0.02 + 0.1 * rng.random()) * height)
        y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, height), max(cx - r, 0), min(cx + r + 1, width)
        by, bx = np.ogrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1][(by - cy) ** 2 + (bx - cx) ** 2 <= r * r] = rng.random(3)
    img += (0.1 * (np.sin(np.arange(width) / 3.0) > 0)).astype(np.float32)[None, :, None]  # 6-px stripes
    img += 0.02 * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def encode_photo(rgb: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, fmt, quality=quality)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of two same-shape images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
