"""ONNX Runtime session for the deblurring generator: providers, contract checks, warm-up, tiles.

Why an object with no mutable state after construction: a later reload builds a new Engine beside the
old one and swaps a reference (see `deps.EngineHolder`); requests already running keep the old one.
`session.run` is thread-safe, so one Engine serves concurrent requests.

Batches: the last batch of an image may be shorter than DEBLUR_TILE_BATCH and is run as is (not padded
with dummy tiles: on CPU that would multiply the work for small images). The batch dimension therefore
takes at most TILE_BATCH values, each compiled/tuned once; warm-up runs the two common ones (full batch
and a single tile) before the engine reports ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .contract import CHANNELS, DTYPE, INPUT_NAME, LAYOUT, NORMALISATION, ONNX_TYPE, OUTPUT_NAME, VALUE_RANGE, Meta
from .errors import first_line
from .kernel_aware import (
    CORRECTED_HINTS,
    HINT_NAMES,
    KernelOf,
    Window,
    estimate_kernel,
    estimation_shape,
    hint_groups,
    hinted_input,
)
from .kernel_correction import KernelCorrector
from .tiling import TilePlan, reflect_indices, run_tiled

log = logging.getLogger("deblur.engine")

PROVIDER_NAMES = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


class ModelError(Exception):
    """The model file is missing, unreadable or not the contract; the message is one clear line."""


class InferenceError(RuntimeError):
    """The model misbehaved at run time (wrong output shape, ORT failure)."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    version: str
    sha256: str
    size_multiple: int
    training: str | None
    normalisation: str | None
    metrics: dict[str, Any] | None
    trained: bool | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class DeblurResult:
    image: np.ndarray  # H×W×3 float32 in [0, 1]
    tiles: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes")


def read_info(path: Path, metadata: dict[str, str]) -> ModelInfo:
    """ModelInfo from the ONNX metadata_props, with the documented defaults."""
    sha = file_sha256(path)
    try:
        multiple = int(metadata.get(Meta.SIZE_MULTIPLE, "1"))
    except ValueError:
        raise ModelError(f"{path}: metadata {Meta.SIZE_MULTIPLE} is not an integer") from None
    if not 1 <= multiple <= 1024:
        raise ModelError(f"{path}: metadata {Meta.SIZE_MULTIPLE} must be 1..1024, got {multiple}")
    metrics = None
    if metadata.get(Meta.METRICS):
        try:
            metrics = json.loads(metadata[Meta.METRICS])
        except ValueError:
            metrics = {"raw": metadata[Meta.METRICS]}
    return ModelInfo(
        path=path,
        name=metadata.get(Meta.NAME) or path.stem,
        version=metadata.get(Meta.VERSION) or sha[:12],
        sha256=sha,
        size_multiple=multiple,
        training=metadata.get(Meta.TRAINING),
        normalisation=metadata.get(Meta.NORMALISATION),
        metrics=metrics,
        trained=_parse_bool(metadata.get(Meta.TRAINED)),
        metadata=dict(metadata),
    )


def _check_contract(session: ort.InferenceSession, path: Path, metadata: dict[str, str]) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ModelError(f"{path}: expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
    if OUTPUT_NAME not in [o.name for o in outputs]:
        raise ModelError(f"{path}: expected an output named {OUTPUT_NAME!r}, got {[o.name for o in outputs]}")
    for arg in (inputs[0], next(o for o in outputs if o.name == OUTPUT_NAME)):
        shape = arg.shape
        if arg.type != ONNX_TYPE or len(shape) != 4:
            raise ModelError(f"{path}: {arg.name} must be {DTYPE} {LAYOUT} rank 4, got {arg.type} {shape}")
        hint = metadata.get(Meta.HINT, "")
        channels = CHANNELS + sum(hint_groups(hint)) if arg.name == INPUT_NAME else CHANNELS
        if isinstance(shape[3], int) and shape[3] != channels:
            raise ModelError(f"{path}: {arg.name} must have {channels} channels ({LAYOUT}), got shape {shape}")
        if isinstance(shape[1], int) or isinstance(shape[2], int):
            raise ModelError(f"{path}: {arg.name} height and width must be dynamic, got shape {shape}")


def _round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


class Engine:
    """One loaded, validated, warmed-up model. Build with Engine(path, ...) or Engine.from_settings()."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        providers: Sequence[str] = ("cuda", "cpu"),
        tile_size: int = 256,
        tile_overlap: int = 32,
        tile_batch: int = 4,
        threads: int = 0,
        warmup: bool = True,
    ) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (set DEBLUR_MODEL_PATH)")
        self.providers_requested = [p.lower() for p in providers]
        unknown = [p for p in self.providers_requested if p not in PROVIDER_NAMES]
        if unknown or not self.providers_requested:
            raise ModelError(f"unknown execution providers {unknown or providers}; use cuda and/or cpu")
        self.session = self._create_session(path, threads)
        # A failed run is raised as InferenceError and logged once by the caller, with its traceback;
        # ORT's own error line for it would be a second, unformatted report of the same failure.
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        _check_contract(self.session, path, meta)
        self.info = read_info(path, meta)
        # A kernel-aware model (docs/model-contract.md) refines the photo beside a deconvolution whose
        # kernel is estimated against a plain model's output: that guide is a second Engine.
        self.guide = self._load_guide(path, meta, providers=providers, tile_size=tile_size, tile_overlap=tile_overlap,
                                      tile_batch=tile_batch, threads=threads, warmup=warmup)
        self.corrector = self._load_corrector(path, meta, self.guide)
        self.kernel_of: KernelOf = self.corrector or estimate_kernel  # the hint's estimator
        self.provider: str = self.session.get_providers()[0]
        if "cuda" in self.providers_requested and self.provider != PROVIDER_NAMES["cuda"]:
            log.warning(
                "CUDA was requested (providers=%s) but is not usable here (no GPU or no CUDA 13/cuDNN 9 "
                "libraries); running on %s",
                ",".join(self.providers_requested),
                self.provider,
            )
        k = self.info.size_multiple
        self.tile_overlap = _round_up(tile_overlap, k)
        self.tile_size = max(_round_up(tile_size, k), 2 * self.tile_overlap, k)
        self.tile_batch = max(1, tile_batch)
        self.warmed = False
        if warmup:
            self.warmup()

    @staticmethod
    def _load_guide(path: Path, meta: dict[str, str], **engine_options: Any) -> Engine | None:
        hint = meta.get(Meta.HINT)
        if not hint:
            return None
        if hint not in HINT_NAMES:
            raise ModelError(f"{path}: metadata hint {hint!r} is not one this service makes "
                             f"({' or '.join(map(repr, HINT_NAMES))})")
        named = meta.get(Meta.HINT_GUIDE, "")
        guide = path.parent / named
        if not named or not guide.is_file() or guide.resolve() == path.resolve():
            raise ModelError(f"{path}: its guide model {named!r} must be another file beside it")
        engine = Engine(guide, **engine_options)
        if engine.guide is not None:
            raise ModelError(f"{path}: its guide {guide.name} needs a guide itself; a guide must be a plain model")
        return engine

    @staticmethod
    def _load_corrector(path: Path, meta: dict[str, str], guide: Engine | None) -> KernelCorrector | None:
        hint, named = meta.get(Meta.HINT), meta.get(Meta.HINT_CORRECTOR, "")
        if hint not in CORRECTED_HINTS:
            if named:
                raise ModelError(f"{path}: names a kernel corrector ({named!r}) but its hint {hint!r} reads none")
            return None
        corrector = path.parent / named
        if not named or not corrector.is_file() or corrector.resolve() == path.resolve():
            raise ModelError(f"{path}: its kernel corrector {named!r} must be another file beside it")
        try:
            return KernelCorrector(corrector, guide=guide.deblurred)
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}") from None

    def tile_count(self, height: int, width: int) -> int:
        """Tiles an image of this size costs in all, the guide's pass included (what `on_progress` counts to)."""
        own = len(self.plan(height, width))
        return own if self.guide is None else own + self.guide.tile_count(*estimation_shape(height, width))

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Engine:
        kwargs: dict[str, Any] = {
            "providers": settings.provider_list,
            "tile_size": settings.tile_size,
            "tile_overlap": settings.tile_overlap,
            "tile_batch": settings.tile_batch,
            "threads": settings.threads,
        }
        kwargs.update(overrides)
        return cls(settings.resolved_model_path(), **kwargs)

    def _create_session(self, path: Path, threads: int) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        names = [PROVIDER_NAMES[p] for p in self.providers_requested]
        cuda = "cuda" in self.providers_requested
        # ORT prints a dozen lines when CUDA is unusable; we log one warning ourselves instead.
        quiet = io.StringIO()
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                if cuda and hasattr(ort, "preload_dlls"):
                    with contextlib.suppress(Exception):
                        ort.preload_dlls()
            if cuda:
                ort.set_default_logger_severity(4)
            return ort.InferenceSession(str(path), sess_options=opts, providers=names)
        except Exception as exc:
            raise ModelError(f"cannot load model {path}: {first_line(exc)}") from None
        finally:
            if cuda:
                ort.set_default_logger_severity(2)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """One raw model call on [N, H, W, 3] float32 (H, W multiples of size_multiple)."""
        try:
            out = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch}, self._run_options)[0]
        except Exception as exc:
            raise InferenceError(f"ONNX Runtime failed on input {batch.shape}: {exc}") from exc
        if out.shape != (*batch.shape[:3], CHANNELS):
            raise InferenceError(f"model returned shape {out.shape} for input {batch.shape}")
        return out

    def warmup(self) -> None:
        """Run the largest tile shape once so the first request pays no allocation/tuning cost (smaller,
        fitted tiles of other photo sizes reuse the memory it reserved)."""
        sizes = sorted({self.tile_batch, 1}, reverse=True)
        try:
            for n in sizes:
                self.run(np.zeros((n, self.tile_size, self.tile_size, CHANNELS + self.hint_channels), np.float32))
        except InferenceError as exc:
            raise ModelError(f"warm-up failed for {self.info.path}: {exc}") from None
        self.warmed = True

    def plan(self, height: int, width: int) -> TilePlan:
        return TilePlan(height, width, self.tile_size, self.tile_overlap, self.info.size_multiple)

    def deblurred(self, rgb: np.ndarray) -> np.ndarray:
        """`deblur`'s image alone: what a guide is asked for (the kernel estimate and its half-size pass)."""
        return self.deblur(rgb).image

    def deblur(self, rgb: np.ndarray, on_progress: Callable[[int], None] | None = None,
               kernel_of: KernelOf | None = None) -> DeblurResult:
        """H×W×3 float32 in [0, 1] → deblurred H×W×3 float32 in [0, 1], via bounded tiles (service/tiling.py).
        A kernel-aware model's hint uses `kernel_of` as its estimator (default its own; benchmarks swap it)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 image, got shape {rgb.shape}")
        plan = self.plan(rgb.shape[0], rgb.shape[1])
        out = run_tiled(self.model_input(rgb, on_progress, kernel_of=kernel_of), self.run, plan, self.tile_batch,
                        on_progress, channels_out=3)
        np.clip(out, 0.0, 1.0, out=out)
        return DeblurResult(out, self.tile_count(rgb.shape[0], rgb.shape[1]))

    @property
    def hint(self) -> str:
        """The metadata hint of a kernel-aware model ("" for a plain one)."""
        return "" if self.guide is None else self.info.metadata.get(Meta.HINT, "")

    @property
    def hint_channels(self) -> int:
        return sum(hint_groups(self.hint))

    def model_input(self, rgb: np.ndarray, on_progress: Callable[[int], None] | None = None,
                    whole: bool = False, kernel_of: KernelOf | None = None) -> np.ndarray:
        """The photo, or for a kernel-aware model the photo ⊕ its hint (guide → kernel → deconvolution)."""
        if self.guide is None:
            return rgb
        guide = self.guide

        def guide_of(window: Window) -> np.ndarray:
            return guide.deblur_whole(rgb[window]) if whole else guide.deblur(rgb[window], on_progress).image
        return hinted_input(rgb, guide_of, kernel_of or self.kernel_of, self.hint)

    def deblur_whole(self, rgb: np.ndarray) -> np.ndarray:
        """Reference path without tiling: reflect-pad to the size multiple, one call, crop, clip."""
        k = self.info.size_multiple
        h, w = rgb.shape[:2]
        rows, cols = reflect_indices(0, _round_up(h, k), h), reflect_indices(0, _round_up(w, k), w)
        padded = self.model_input(rgb, whole=True)[rows[:, None], cols[None, :]]
        out = self.run(np.ascontiguousarray(padded[None], np.float32))[0, :h, :w]
        return np.clip(out, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        """What /model answers."""
        i = self.info
        return {
            "name": i.name,
            "version": i.version,
            "sha256": i.sha256,
            "trained": i.trained,
            "training": i.training,
            "metrics": i.metrics,
            "execution_provider": self.provider,
            "providers_requested": self.providers_requested,
            "tiling": {"tile_size": self.tile_size, "overlap": self.tile_overlap, "batch": self.tile_batch},
            "input": {
                "name": INPUT_NAME,
                "output": OUTPUT_NAME,
                "layout": LAYOUT,
                "dtype": DTYPE,
                "channels": CHANNELS + self.hint_channels,
                "range": list(VALUE_RANGE),
                "normalisation": i.normalisation or NORMALISATION,
                "size_multiple": i.size_multiple,
            },
            "kernel_aware": None if self.guide is None else {
                "hint": i.metadata.get(Meta.HINT),
                "guide": {"name": self.guide.info.name, "version": self.guide.info.version,
                          "sha256": self.guide.info.sha256},
                "corrector": None if self.corrector is None else {"file": self.corrector.path.name,
                                                                  "canvas": self.corrector.canvas,
                                                                  "cross_scale": self.corrector.maps.cross_scale},
            },
            "metadata": i.metadata,
        }
