"""Peak memory: the server answering a 24-megapixel upload, and the `deblur` CLI on the same file.

    python -m bench.memory [--model M] [--threads 2]

How: the server's peak is its kernel high-water mark (VmHWM in /proc/<pid>/status) read after each
answer, cross-checked by sampling VmRSS every 20 ms; a 6 MP upload is sent first (VmHWM only grows),
so the difference shows how memory scales with the image: the full-size buffers are the decoded
picture, the blended output and its weight map; tiles themselves are bounded by the tile batch. The
CLI's peak is its ru_maxrss from os.wait4 (this child only, unlike RUSAGE_CHILDREN).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import SIZES, Report, Table, base_parser, encode_photo, finish, require_model, synthetic_photo
from bench.server import RssSampler, Server, console_script, post_image, proc_status

MB = 1024 * 1024
LIMITS = {"max_megapixels": "100", "max_upload_mb": "500"}


def server_peaks(model: Path, threads: int, files: list[tuple[str, bytes]]) -> tuple[int, list[tuple[int, int, float]]]:
    """Idle RSS after warm-up, then (VmHWM, sampled peak, seconds) after each upload, smallest first."""
    rows = []
    with Server(model, threads, **LIMITS) as server, httpx.Client(timeout=1800) as client:
        idle = proc_status(server.pid, "VmRSS")
        for _, data in files:
            sampler = RssSampler(server.pid)
            sampler.start()
            start = time.perf_counter()
            post_image(client, server.url, data, "big.jpg", "image/jpeg")
            seconds = time.perf_counter() - start
            rows.append((proc_status(server.pid, "VmHWM"), sampler.stop(), seconds))
    return idle, rows


def cli_peak(model: Path, threads: int, src: Path) -> tuple[int, float]:
    """ru_maxrss (bytes) and wall seconds of one `deblur` run on `src`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBLUR_")}
    env.update(DEBLUR_THREADS=str(threads), DEBLUR_PROVIDERS="cpu", DEBLUR_MAX_MEGAPIXELS=LIMITS["max_megapixels"])
    out = src.with_name("out.jpg")
    cmd = [console_script("deblur"), str(src), "-o", str(out), "--model", str(model), "-q", "--overwrite"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode or not out.is_file():
        err = proc.stderr.read().decode()[-1000:] if proc.stderr else ""
        raise RuntimeError(f"deblur exited {proc.returncode}: {err}")
    return usage.ru_maxrss * 1024, seconds


def run(args: argparse.Namespace) -> Report:
    require_model(args)
    sizes = {"0.5 MP": (600, 800), "2 MP": SIZES["2MP"]} if args.quick else {"6 MP": (2000, 3000),
                                                                            "24 MP": SIZES["24MP"]}
    files = [(label, encode_photo(synthetic_photo(h, w), "JPEG", quality=90)) for label, (h, w) in sizes.items()]
    idle, peaks = server_peaks(args.model, args.threads, files)
    table = Table(["process", "image", "upload MB", "seconds", "peak RSS MB (VmHWM / ru_maxrss)",
                   "sampled peak MB", "above idle MB"])
    for (label, data), (hwm, sampled, seconds) in zip(files, peaks, strict=True):
        (h, w) = sizes[label]
        table.add("server", f"{label} ({w}×{h})", len(data) / MB, seconds, hwm / MB, sampled / MB, (hwm - idle) / MB)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.jpg"
        label, data = files[-1]
        src.write_bytes(data)
        cli_rss, cli_s = cli_peak(args.model, args.threads, src)
    h, w = sizes[label]
    table.add("`deblur` CLI", f"{label} ({w}×{h})", len(data) / MB, cli_s, cli_rss / MB, "-", "-")
    (small_mp, big_mp) = [h * w / 1e6 for h, w in sizes.values()]
    slope = (peaks[-1][0] - peaks[0][0]) / MB / (big_mp - small_mp)
    body = (f"Server: `deblur-serve`, DEBLUR_THREADS={args.threads}, default tiles, limits raised "
            f"(DEBLUR_MAX_MEGAPIXELS={LIMITS['max_megapixels']}, DEBLUR_MAX_UPLOAD_MB={LIMITS['max_upload_mb']}); "
            f"JPEG uploads (quality 90), answered as JPEG. Server RSS idle after warm-up: {idle / MB:.0f} MB. "
            f"Growth between the two uploads: **{slope:.0f} MB per "
            f"megapixel** (the full-size buffers: decoded float RGB, blended output + weights, 8-bit result, "
            f"encoded bytes); the tiles add a constant.\n\n" + table.markdown())
    summary = [(f"server peak RSS, {label} upload", f"{peaks[-1][0] / MB:.0f} MB", "≤ 1536 MB"),
               (f"CLI peak RSS, {label}", f"{cli_rss / MB:.0f} MB", "≤ 1536 MB")]
    return Report("memory", "Memory: peak RSS of the server and the CLI on a 24 MP image", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("memory", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
