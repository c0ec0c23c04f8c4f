"""`deblur-serve [--host H] [--port P] [--model F] [--providers L] [--threads N] [--workers N]`.

Why its own module: the flags are read before anything heavy is imported, so `--help` and `--version`
answer at once without loading onnxruntime or FastAPI. One precedence rule for every setting: a flag beats
its environment variable, which beats the default. A flag is written into its variable, so both go through
the same validation in `settings.Settings` and a bad value exits 2 with one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__

# flag -> the environment variable it sets, then the unprefixed aliases it drops (they would otherwise win)
SERVE_FLAGS = {
    "host": ("DEBLUR_HOST", "HOST"),
    "port": ("DEBLUR_PORT", "PORT"),
    "model": ("DEBLUR_MODEL_PATH",),
    "providers": ("DEBLUR_PROVIDERS",),
    "threads": ("DEBLUR_THREADS",),
    "workers": ("DEBLUR_WORKERS",),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deblur-serve",
        description="Serve the deblurring model over HTTP. Every setting is a DEBLUR_* environment variable "
        "(docs/settings.md); a flag overrides its variable, a variable overrides the default.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--host", help="address to listen on (DEBLUR_HOST/HOST; default 0.0.0.0)")
    p.add_argument("--port", help="port (DEBLUR_PORT/PORT; default 8000)")
    p.add_argument("--model", help="ONNX model file (DEBLUR_MODEL_PATH; default the shipped model)")
    p.add_argument("--providers", help="cuda,cpu or cpu (DEBLUR_PROVIDERS; default cuda,cpu)")
    p.add_argument("--threads", help="ONNX Runtime intra-op threads, 0 = its choice (DEBLUR_THREADS; default 0)")
    p.add_argument("--workers", help="server processes, each with its own model; more than 1 needs "
                   "DEBLUR_REDIS_URL (DEBLUR_WORKERS; default 1)")
    return p


def apply_flags(args: argparse.Namespace) -> None:
    """Write each given flag into its environment variable (also read by uvicorn's worker processes)."""
    for flag, (variable, *aliases) in SERVE_FLAGS.items():
        if (value := getattr(args, flag)) is not None:
            os.environ[variable] = value
            for alias in aliases:
                os.environ.pop(alias, None)


def main(argv: list[str] | None = None) -> None:
    """Console script `deblur-serve`. Exits 2 with one line if a setting or the model is bad."""
    apply_flags(parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .settings import get_settings, settings_or_explain

    get_settings.cache_clear()  # the flags changed the environment it reads
    settings = settings_or_explain(logging.getLogger("deblur.app"))
    if settings is None:
        sys.exit(2)
    from .app import serve

    serve(settings)


if __name__ == "__main__":
    main()
