"""`python -m bench.scale`: real nginx (Debian's, deploy/nginx's templates) in front of N `deblur-serve`
replicas on 127.0.0.1, 16 clients for a bounded time, one replica SIGKILLed mid-load.

Pass (exit 0) when nothing was lost: every answer is a 200 or a planned 503 with Retry-After (a busy
replica's, or nginx's "no replica is free"), every request in flight on the killed replica was retried
by nginx on another and answered, every surviving replica served a share, a client trickling its
headers was cut by nginx within its client_header_timeout, and the proxy is ready afterwards.
Any other status, a connection error or a missed check is an unplanned failure: exit 1.
tests/service/test_service_scale.py runs an 8-s form of it (tiny model) in `make test`.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import (
    DEFAULT_MODEL,
    DEFAULT_RESULTS,
    Table,
    encode_photo,
    header_markdown,
    machine_info,
    model_info,
    synthetic_photo,
    write_section,
)
from bench.kill import kill_mid_load
from bench.proxy import Nginx, parse_access
from bench.server import Server
from bench.soak import percentile

PLANNED = ("503 busy (replica)", "503 no replica free (nginx)")


@dataclass
class Answers:
    """What the clients saw: outcome → count, latencies of the 200s."""

    outcomes: Counter = field(default_factory=Counter)
    ok_ms: list[float] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)  # what each lost request got, for the report
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, what: str) -> None:
        with self.lock:
            self.unplanned.append(what)

    def record(self, outcome: str, ms: float) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "200":
                self.ok_ms.append(ms)


def classify(response: httpx.Response) -> str:
    """200, one of the PLANNED 503s (they carry Retry-After), or the status as an unplanned outcome."""
    if response.status_code == 503 and "retry-after" in response.headers:
        detail = response.json().get("detail", "") if "json" in response.headers.get("content-type", "") else ""
        if detail.startswith("server busy"):
            return PLANNED[0]
        if detail.startswith("no API replica is free"):
            return PLANNED[1]
    return str(response.status_code)


def load(url: str, image: bytes, clients: int, seconds: float, answers: Answers) -> None:
    """`clients` threads, each with its own keep-alive connection to nginx, POST until the deadline."""
    t0 = time.monotonic()
    deadline = t0 + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                start = time.perf_counter()
                try:
                    r = c.post("/deblur", files={"file": ("scale.png", image, "image/png")},
                               headers={"X-Request-ID": f"scale-{index}-{n}"})
                except httpx.HTTPError as exc:
                    answers.record(f"client error {type(exc).__name__}", (time.perf_counter() - start) * 1000)
                    answers.note(f"scale-{index}-{n}: {type(exc).__name__}: {exc} at {time.monotonic() - t0:.2f} s")
                    continue
                outcome = classify(r)
                answers.record(outcome, (time.perf_counter() - start) * 1000)
                if outcome != "200" and outcome not in PLANNED:
                    answers.note(f"scale-{index}-{n}: {r.status_code} {r.text[:200]}")
                if outcome in PLANNED:
                    time.sleep(0.05)  # a polite client backs off a little

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def slow_header_client(port: int, record: dict, limit_s: float) -> None:
    """Send a request line, then one header byte every 0.2 s; note when nginx closes the connection."""
    started = time.monotonic()
    cut = None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /deblur HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while cut is None and time.monotonic() - started < limit_s:
            try:
                sock.sendall(b"x")
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    cut = time.monotonic() - started
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - started
            time.sleep(0.2)
    record["slow_header_cut_s"] = None if cut is None else round(cut, 2)


def run(args: argparse.Namespace) -> dict:
    image = encode_photo(synthetic_photo(args.height, args.width), "png")
    settings = {"max_concurrency": args.max_concurrency, "max_queue": args.max_queue}
    if args.tile_size:
        settings.update(tile_size=args.tile_size, tile_overlap=args.tile_size // 4)
    answers, events = Answers(), {}
    with ExitStack() as stack:
        replicas = [stack.enter_context(Server(args.model, threads=args.threads, **settings))
                    for _ in range(args.replicas)]
        proxy = stack.enter_context(Nginx([r.port for r in replicas],
                                          NGINX_CLIENT_HEADER_TIMEOUT=f"{args.header_timeout:g}s"))
        victim = replicas[0]
        helpers = [threading.Thread(target=kill_mid_load, args=(victim, args.seconds * args.kill_at, events)),
                   threading.Thread(target=slow_header_client,
                                    args=(proxy.port, events, args.header_timeout + 5))]
        started = time.monotonic()
        for t in helpers:
            t.start()
        load(proxy.url, image, args.clients, args.seconds, answers)
        elapsed = time.monotonic() - started
        for t in helpers:
            t.join()
        ready = httpx.get(proxy.url + "/readyz", timeout=10).status_code
        log = [parse_access(line) for line in proxy.access_lines()]
        addresses = [f"127.0.0.1:{r.port}" for r in replicas]
    return summarise(args, answers, events, log, addresses, elapsed, ready)


def summarise(args: argparse.Namespace, answers: Answers, events: dict, log: list[dict], addresses: list[str],
              elapsed: float, ready: int) -> dict:
    deblur = [e for e in log if "upstream" in e and e.get("rid", "").startswith("scale-")]
    served = Counter(e["upstream"].split(", ")[-1] for e in deblur if e["status"] == "200")
    moved = sum(1 for e in deblur if addresses[0] in e["upstream"].split(", ")[:-1] and e["status"] == "200")
    retried = sum(1 for e in deblur if ", " in e["upstream"])
    total = sum(answers.outcomes.values())
    result = {
        "replicas": args.replicas, "clients": args.clients, "seconds": round(elapsed, 1),
        "image": f"{args.width}x{args.height} png", "max_concurrency": args.max_concurrency,
        "max_queue": args.max_queue, "requests": total, "outcomes": dict(answers.outcomes),
        "lost": sum(n for k, n in answers.outcomes.items() if k != "200" and k not in PLANNED),
        "lost_detail": answers.unplanned[:20],
        "ok_p50_ms": percentile(answers.ok_ms, 50), "ok_p95_ms": percentile(answers.ok_ms, 95),
        "ok_max_ms": max(answers.ok_ms, default=float("nan")),
        "ok_per_s": answers.outcomes["200"] / elapsed if elapsed else 0.0,
        "served_by": {a: served.get(a, 0) for a in addresses}, "killed": addresses[0],
        "retried_by_nginx": retried, "moved_off_killed": moved, "header_timeout_s": args.header_timeout,
        "ready_after": ready, **events,
    }
    result["failures"] = failures(result)
    return result


def failures(r: dict) -> list[str]:
    found = []
    if r["lost"]:
        found.append(f"{r['lost']} requests lost: {r['outcomes']}; {r['lost_detail']}")
    if r.get("exit") != -signal.SIGKILL:
        found.append(f"the killed replica did not die by SIGKILL (exit {r.get('exit')})")
    if r.get("in_flight_when_killed", 0) < 1 or r["moved_off_killed"] < 1:
        found.append("the kill did not land mid-request (no request on the killed replica was moved)")
    idle = [a for a, n in r["served_by"].items() if a != r["killed"] and n == 0]
    if idle:
        found.append(f"surviving replicas served nothing: {idle}")
    cut = r.get("slow_header_cut_s")
    if cut is None or cut > r["header_timeout_s"] + 1.5:
        found.append(f"slow-header client not cut by nginx within {r['header_timeout_s']} s (+1.5): {cut}")
    if r["ready_after"] != 200:
        found.append(f"/readyz through nginx answered {r['ready_after']} after the run")
    return found


def table(r: dict) -> str:
    t = Table(["metric", "value"])
    for outcome, count in sorted(r["outcomes"].items()):
        t.add(f"answers {outcome}", count)
    t.add("requests lost", r["lost"])
    t.add("200 latency p50 / p95 / max, ms", f"{r['ok_p50_ms']:.0f} / {r['ok_p95_ms']:.0f} / {r['ok_max_ms']:.0f}")
    t.add("200 answers per second", r["ok_per_s"])
    ok = sum(r["served_by"].values()) or 1
    for i, (address, n) in enumerate(r["served_by"].items()):
        state = f"SIGKILL at {r['killed_at_s']} s" if address == r["killed"] else "alive"
        t.add(f"replica {i + 1} ({state}): 200s served", f"{n} ({100 * n / ok:.0f} %)")
    t.add("in flight on the killed replica when killed", r.get("in_flight_when_killed"))
    t.add("requests nginx moved off the killed replica (answered 200)", r["moved_off_killed"])
    t.add("requests nginx tried on more than one replica", r["retried_by_nginx"])
    t.add(f"slow-header client cut after (client_header_timeout {r['header_timeout_s']:g} s)",
          f"{r.get('slow_header_cut_s')} s")
    head = (f"{r['replicas']} replicas, {r['clients']} clients, {r['seconds']} s, {r['image']}, "
            f"DEBLUR_MAX_CONCURRENCY={r['max_concurrency']} DEBLUR_MAX_QUEUE={r['max_queue']}")
    verdict = "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])
    return f"{head}\n\n{t.markdown()}\n\n{verdict}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (default: the shipped one)")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0, help="load duration")
    p.add_argument("--kill-at", type=float, default=0.4, help="SIGKILL replica 1 at this fraction of the load")
    p.add_argument("--max-concurrency", type=int, default=1, help="DEBLUR_MAX_CONCURRENCY of each replica")
    p.add_argument("--max-queue", type=int, default=8, help="DEBLUR_MAX_QUEUE of each replica")
    p.add_argument("--threads", type=int, default=1, help="DEBLUR_THREADS (ORT intra-op threads) per replica")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--tile-size", type=int, default=0, help="DEBLUR_TILE_SIZE (overlap = size/4); 0 = default")
    p.add_argument("--header-timeout", type=float, default=2.0, help="nginx client_header_timeout, seconds")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--markdown", type=Path, nargs="?", const=DEFAULT_RESULTS, metavar="FILE",
                   help="write the table as the `scale` section of FILE (default bench/RESULTS.md)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the replicas and nginx
    if not args.model.is_file():
        raise SystemExit(f"bench.scale: model {args.model} not found; pass --model PATH")
    if args.replicas < 2 or args.clients < 1 or args.seconds <= 0 or not 0 < args.kill_at < 1:
        raise SystemExit("bench.scale: need --replicas >= 2, --clients >= 1, --seconds > 0, 0 < --kill-at < 1")
    result = run(args)
    print(json.dumps(result) if args.json else table(result), flush=True)
    if args.markdown:
        header = header_markdown(machine_info(), model_info(args.model))
        how = ("Debian's nginx with deploy/nginx's templates in front of `deblur-serve` replicas on 127.0.0.1; "
               "replica 1 gets SIGKILL while it holds requests and its event loop waits for I/O "
               "(docs/scale-out.md says why). Lost = any answer but 200 or 503 with Retry-After, or a connection "
               "error; share = 200s by the replica that answered (nginx's access log).")
        write_section(args.markdown, "scale", f"## Scale-out: nginx + {args.replicas} replicas, one killed\n\n"
                      f"{header}\n\n{how}\n\n{table(result)}\n")
        print(f"(written to {args.markdown})")
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
