"""HTTP overhead: end-to-end POST /deblur against the real server vs the engine alone (720p PNG and JPEG).

    python -m bench.http [--model M] [--threads 2] [--repeats 5]

Why each stage is timed separately: the server answers X-Process-Time-Ms (decode + engine + encode,
measured inside the worker thread); decode and encode are also timed here by calling service.images
directly, the engine by Engine.deblur with the same thread count. What is left of the client's wall
time after the server's own time is HTTP: multipart parsing, the thread hop, uvicorn and the socket.
The server and this process never run at the same time (requests and engine calls alternate).
"""

from __future__ import annotations

import argparse
import statistics

import httpx

from bench.common import (
    SIZES,
    Report,
    Table,
    base_parser,
    encode_photo,
    finish,
    interleaved,
    measure,
    require_model,
    synthetic_photo,
)
from bench.engine import make_engine
from bench.server import Server, post_image

FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg")}


def run(args: argparse.Namespace) -> Report:
    from service.images import decode, encode

    require_model(args)
    repeats = 1 if args.quick else args.repeats
    h, w = (240, 320) if args.quick else SIZES["720p"]
    img = synthetic_photo(h, w)
    engine = make_engine(args.model, args.threads)
    table = Table(["upload", "KB in", "KB out", "decode s", "engine s", "encode s", "server s (X-Process-Time)",
                   "end-to-end s", "HTTP + transfer s", "end-to-end / engine"])
    summary = []
    with Server(args.model, args.threads) as server, httpx.Client(timeout=600) as client:
        for fmt, (media, ext) in FORMATS.items():
            data = encode_photo(img, fmt, quality=90)
            decoded = decode(data)
            result = engine.deblur(decoded.rgb).image
            decode_t = measure(lambda data=data: decode(data), repeats)
            encode_t = measure(lambda r=result, d=decoded, f=ext: encode(r, d, "jpeg" if f == "jpg" else f), repeats)
            server_ms: list[float] = []
            answer: list[int] = []

            def request(data: bytes = data, media: str = media, ext: str = ext, server_ms: list[float] = server_ms,
                        answer: list[int] = answer) -> None:
                response = post_image(client, server.url, data, f"bench.{ext}", media)
                server_ms.append(float(response.headers["X-Process-Time-Ms"]))
                answer.append(len(response.content))

            times = interleaved({"http": request, "engine": lambda rgb=decoded.rgb: engine.deblur(rgb)}, repeats)
            e2e, eng = times["http"].median, times["engine"].median
            server_s = statistics.median(server_ms[-repeats:]) / 1000  # the timed requests, not the warm-up
            table.add(f"{w}×{h} {fmt}", len(data) / 1024, answer[-1] / 1024, decode_t.median, eng, encode_t.median,
                      server_s, e2e, e2e - server_s, e2e / eng)
            summary.append((f"HTTP end-to-end / engine, {h}p {fmt}", f"{e2e / eng:.2f}", "≤ 1.10"))
    body = (f"Server: `deblur-serve` on 127.0.0.1 (DEBLUR_THREADS={args.threads}, CPU provider, default tiles); "
            f"client: httpx with keep-alive, answer in the input's format. Median of {repeats}; the request and "
            f"the engine-alone call alternate. `HTTP + transfer` = end-to-end − the server's X-Process-Time.\n\n"
            + table.markdown())
    return Report("http", "HTTP overhead: POST /deblur vs the engine alone", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("http", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (server and engine)")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
