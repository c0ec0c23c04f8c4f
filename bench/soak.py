"""`python -m bench.soak --model PATH`: N concurrent clients hammer the real server (`deblur-serve`, 127.0.0.1)
for S seconds with DEBLUR_MAX_CONCURRENCY=2; prints status counts, latency percentiles, RSS and open fds.

Pass criteria (exit 0), the issue's "load and soak" contract: every answer is 200 or 503 with
Retry-After (no other status, no connection error), RSS grows < 10 % from after the warm-up to the end,
open fds return to the warm-up baseline, and at least --min-requests answers were seen.
Why warm-up first: the first requests size the thread pool, ORT arenas and allocator caches once; growth
after that is what a leak looks like. tests/service/test_service_load.py runs a short form of this.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import DEFAULT_MODEL, Table, encode_photo, synthetic_photo
from bench.server import Server, proc_status


@dataclass
class Load:
    statuses: Counter = field(default_factory=Counter)  # "200", "503", or an exception name
    latencies_ms: list[float] = field(default_factory=list)
    ok_latencies_ms: list[float] = field(default_factory=list)
    busy_without_retry_after: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: str, ms: float, retry_after: bool = True) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies_ms.append(ms)
            if status == "200":
                self.ok_latencies_ms.append(ms)
            if status == "503" and not retry_after:
                self.busy_without_retry_after += 1


def hammer(url: str, image: bytes, clients: int, seconds: float, pause_after_busy: float) -> Load:
    """`clients` threads, each with its own keep-alive connection, POST until the deadline."""
    load = Load()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    r = c.post("/deblur", files={"file": ("soak.png", image, "image/png")})
                except httpx.HTTPError as exc:
                    load.record(type(exc).__name__, (time.perf_counter() - start) * 1000)
                    continue
                load.record(str(r.status_code), (time.perf_counter() - start) * 1000, "retry-after" in r.headers)
                if r.status_code == 503:
                    time.sleep(pause_after_busy)  # a polite client waits; a tiny pause keeps the load hostile

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return load


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, baseline: int, timeout: float = 10.0) -> int:
    """Open fds once the closed client sockets are reaped (polls until back to `baseline` or timeout)."""
    deadline = time.monotonic() + timeout
    while (now := open_fds(pid)) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    return now


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def soak(args: argparse.Namespace) -> dict:
    image = encode_photo(synthetic_photo(args.height, args.width), "png")
    settings = {"max_concurrency": args.max_concurrency, "max_queue": args.max_queue}
    if args.tile_size:
        settings.update(tile_size=args.tile_size, tile_overlap=args.tile_size // 4)
    with Server(args.model, threads=args.threads, **settings) as server:
        hammer(server.url, image, args.clients, args.warmup, args.pause_after_busy)
        time.sleep(1.0)  # let the warm-up's client sockets close
        fds_before = open_fds(server.pid)
        rss_before = proc_status(server.pid, "VmRSS")
        started = time.monotonic()
        load = hammer(server.url, image, args.clients, args.seconds, args.pause_after_busy)
        elapsed = time.monotonic() - started
        fds_after = settled_fds(server.pid, fds_before)
        rss_after = proc_status(server.pid, "VmRSS")
        ready = httpx.get(server.url + "/readyz", timeout=10).status_code
    total = sum(load.statuses.values())
    result = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "image": f"{args.width}x{args.height} png",
        "max_concurrency": args.max_concurrency,
        "max_queue": args.max_queue,
        "requests": total,
        "statuses": dict(load.statuses),
        "busy_without_retry_after": load.busy_without_retry_after,
        "p50_ms": percentile(load.latencies_ms, 50),
        "p95_ms": percentile(load.latencies_ms, 95),
        "ok_p50_ms": percentile(load.ok_latencies_ms, 50),
        "ok_p95_ms": percentile(load.ok_latencies_ms, 95),
        "ok_per_s": load.statuses["200"] / elapsed if elapsed else 0.0,
        "rss_before_mib": rss_before / 2**20,
        "rss_after_mib": rss_after / 2**20,
        "rss_growth_pct": 100.0 * (rss_after - rss_before) / rss_before,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "ready_after": ready,
    }
    result["failures"] = failures(result, args.min_requests)
    return result


def failures(r: dict, min_requests: int) -> list[str]:
    found = []
    unexpected = {k: v for k, v in r["statuses"].items() if k not in ("200", "503")}
    if unexpected:
        found.append(f"answers other than 200/503: {unexpected}")
    if r["busy_without_retry_after"]:
        found.append(f"{r['busy_without_retry_after']} answers 503 without Retry-After")
    if r["rss_growth_pct"] >= 10:
        found.append(f"RSS grew {r['rss_growth_pct']:.1f} % (limit 10 %)")
    if r["fds_after"] > r["fds_before"]:
        found.append(f"open fds {r['fds_before']} -> {r['fds_after']}")
    if r["requests"] < min_requests:
        found.append(f"only {r['requests']} requests (want >= {min_requests})")
    if r["ready_after"] != 200:
        found.append(f"/readyz answered {r['ready_after']} after the soak")
    return found


def table(r: dict) -> str:
    t = Table(["metric", "value"])
    for status, count in sorted(r["statuses"].items()):
        t.add(f"answers {status}", count)
    for key in ("requests", "seconds", "ok_per_s", "p50_ms", "p95_ms", "ok_p50_ms", "ok_p95_ms", "rss_before_mib",
                "rss_after_mib", "rss_growth_pct", "fds_before", "fds_after", "busy_without_retry_after"):
        t.add(key, r[key])
    head = (f"{r['clients']} clients, {r['seconds']} s, {r['image']}, "
            f"DEBLUR_MAX_CONCURRENCY={r['max_concurrency']} DEBLUR_MAX_QUEUE={r['max_queue']}")
    verdict = "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])
    return f"{head}\n\n{t.markdown()}\n\n{verdict}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (default: the shipped one)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured load duration")
    p.add_argument("--warmup", type=float, default=3.0, help="load before the baseline RSS/fds are taken")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--max-concurrency", type=int, default=2, help="DEBLUR_MAX_CONCURRENCY of the server")
    p.add_argument("--max-queue", type=int, default=8, help="DEBLUR_MAX_QUEUE of the server")
    p.add_argument("--threads", type=int, default=1, help="DEBLUR_THREADS (ORT intra-op threads)")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--tile-size", type=int, default=0, help="DEBLUR_TILE_SIZE (overlap = size/4); 0 = default")
    p.add_argument("--pause-after-busy", type=float, default=0.05, help="seconds a client waits after a 503")
    p.add_argument("--min-requests", type=int, default=500)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.model.is_file():
        raise SystemExit(f"bench.soak: model {args.model} not found; pass --model PATH")
    result = soak(args)
    print(json.dumps(result) if args.json else table(result), flush=True)
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
