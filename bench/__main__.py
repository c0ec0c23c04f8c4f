"""`python -m bench [--model PATH] [--quick]` (= `make bench ARGS=...`): every benchmark, then one summary table.

A full run writes each section into bench/RESULTS.md as it finishes (so an interrupted run keeps what
it measured) and the summary on top; --quick is a smoke run on tiny sizes and writes nothing unless
--markdown is given. A benchmark that fails is reported in the summary and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench import concurrency, efficiency, engine, gpu, http, memory, tiling
from bench.common import (
    DEFAULT_MODEL,
    DEFAULT_RESULTS,
    REPO,
    Table,
    header_markdown,
    machine_info,
    model_info,
    write_section,
)

BENCHMARKS = {"engine": engine, "tiling": tiling, "http": http, "memory": memory, "efficiency": efficiency,
              "concurrency": concurrency, "gpu": gpu}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX model (default: the shipped one)")
    p.add_argument("--weights", type=Path, default=REPO / "models" / "generator.weights.h5",
                   help="Keras weights of the same model, for the TF comparison")
    p.add_argument("--config", type=Path, default=REPO / "models" / "train-config.json")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median quoted)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: checks the scripts work")
    p.add_argument("--only", help=f"comma list from {', '.join(BENCHMARKS)} (default: all)")
    p.add_argument("--markdown", type=Path, metavar="FILE",
                   help=f"results file (default {DEFAULT_RESULTS.relative_to(REPO)} for a full run, none for --quick)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.model.is_file():
        print(f"bench: model {args.model} not found; pass --model PATH", file=sys.stderr)
        return 2
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    results = args.markdown or (None if args.quick else DEFAULT_RESULTS)
    info = machine_info()
    summary = Table(["benchmark", "metric", "value", "target", "took s"])
    failed = 0
    for name in names:
        forward = ["--model", str(args.model), "--repeats", str(args.repeats)] + ["--quick"] * args.quick
        forward += ["--markdown", str(results)] if results else []
        if name == "engine":
            forward += ["--weights", str(args.weights), "--config", str(args.config)]
        print(f"\n=== bench.{name} ===", flush=True)
        start = time.perf_counter()
        try:
            report = BENCHMARKS[name].main(forward)
        except (Exception, SystemExit) as exc:
            failed += 1
            traceback.print_exc()
            summary.add(name, "FAILED", str(exc).strip().splitlines()[-1][:80] if str(exc).strip() else "error", "-",
                        time.perf_counter() - start)
            continue
        took = time.perf_counter() - start
        for metric, value, target in report.summary or [("-", "-", "-")]:
            summary.add(name, metric, value, target, took)
    text = ("## Summary\n\n" + header_markdown(info, model_info(args.model))
            + ("\n- **--quick smoke run: not a result**" if args.quick else "") + "\n\n" + summary.markdown() + "\n")
    print("\n" + text)
    if results:
        write_section(results, "summary", text, first=True)
        print(f"(written to {results})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
