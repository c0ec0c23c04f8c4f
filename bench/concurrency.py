"""Concurrency: 1, 2 and 4 clients at once against the real server (720p JPEG): throughput, p50/p95 latency.

    python -m bench.concurrency [--model M] [--threads 2] [--clients 1,2,4] [--requests 4]

Each client is a thread with its own keep-alive connection sending its requests back to back; all
start together (a barrier). On a 2-core machine the server runs one inference at a time by default
(DEBLUR_MAX_CONCURRENCY=1, both cores on it) and queues the rest, so throughput should stay flat
while latency grows with the number of clients; a 503 (queue full) is counted, never timed.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import httpx
import numpy as np

from bench.common import SIZES, Report, Table, base_parser, encode_photo, finish, require_model, synthetic_photo
from bench.server import Server


def load(url: str, data: bytes, clients: int, requests: int) -> tuple[list[float], int, float]:
    """Latencies of the 200 answers, the count of other answers, and the wall time of the whole run."""
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            barrier.wait()
            for _ in range(requests):
                start = time.perf_counter()
                status = http.post(url + "/deblur", files={"file": ("bench.jpg", data, "image/jpeg")}).status_code
                with lock:
                    if status == 200:
                        latencies.append(time.perf_counter() - start)
                    else:
                        failed[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, failed[0], time.perf_counter() - start


def run(args: argparse.Namespace) -> Report:
    require_model(args)
    h, w = (240, 320) if args.quick else SIZES["720p"]
    requests = 1 if args.quick else args.requests
    data = encode_photo(synthetic_photo(h, w), "JPEG", quality=90)
    settings = {"max_concurrency": str(args.max_concurrency)} if args.max_concurrency else {}
    table = Table(["clients", "requests", "ok", "refused (503)", "wall s", "images/s", "MP/s", "p50 s", "p95 s",
                   "max s"])
    summary = []
    with Server(args.model, args.threads, **settings) as server:
        load(server.url, data, 1, 1)  # warm the connection path
        for clients in (int(c) for c in args.clients.split(",")):
            lat, failed, wall = load(server.url, data, clients, requests)
            ok = len(lat)
            table.add(clients, clients * requests, ok, failed, wall, ok / wall, ok * h * w / 1e6 / wall,
                      statistics.median(lat) if lat else float("nan"),
                      float(np.percentile(lat, 95)) if lat else float("nan"), max(lat, default=float("nan")))
            summary.append((f"{clients} client(s): throughput, p95 latency",
                            f"{ok / wall:.2f} img/s, {np.percentile(lat, 95) if lat else float('nan'):.2f} s", "-"))
    body = (f"Server: `deblur-serve`, DEBLUR_THREADS={args.threads}, DEBLUR_MAX_CONCURRENCY="
            f"{args.max_concurrency or 'default (1)'}, default queue; {w}×{h} JPEG (quality 90) answered as JPEG. "
            f"Each client sends {requests} requests back to back; p95 over all requests of the run (few samples: "
            f"read it as the slowest typical wait).\n\n" + table.markdown())
    return Report("concurrency", "Concurrency: clients at once vs throughput and latency", body, summary)


def parser() -> argparse.ArgumentParser:
    p = base_parser("concurrency", __doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="server's ONNX Runtime intra-op threads")
    p.add_argument("--clients", default="1,2,4", help="comma list of concurrent client counts")
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--max-concurrency", type=int, help="DEBLUR_MAX_CONCURRENCY for the server (default: its own)")
    return p


def main(argv: list[str] | None = None) -> Report:
    args = parser().parse_args(argv)
    return finish(run(args), args)


if __name__ == "__main__":
    main()
