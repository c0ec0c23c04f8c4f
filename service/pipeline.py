"""decode → deblur → encode: the one code path shared by the API, the jobs and the `deblur` command."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .engine import Engine
from .images import EncodedImage, decode, encode, output_format, probe_size
from .settings import Settings

TilesCallback = Callable[[int, int], None]  # (tiles done, tiles in all) of the image being deblurred


@dataclass
class Processed:
    encoded: EncodedImage
    width: int
    height: int
    tiles: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)  # decode / inference / encode seconds (/metrics)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def process_bytes(
    engine: Engine,
    data: bytes,
    *,
    fmt: str | None = None,
    quality: int | None = None,
    max_megapixels: float = 40.0,
    max_side: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Processed:
    """Deblur one encoded image. Raises images.ImageError subclasses for bad input (client errors)."""
    start = time.perf_counter()
    decoded = decode(data, max_megapixels, max_side)
    target = output_format(fmt, decoded)
    decoded_at = time.perf_counter()
    result = engine.deblur(decoded.rgb, on_progress)
    decoded.rgb = result.image  # drop the input pixels before encoding (memory), keep the metadata
    inferred_at = time.perf_counter()
    encoded = encode(result.image, decoded, target, quality)
    end = time.perf_counter()
    stages = {"decode": decoded_at - start, "inference": inferred_at - decoded_at, "encode": end - inferred_at}
    return Processed(encoded, decoded.width, decoded.height, result.tiles, end - start, stages)


# What `deblur` runs each input through: LocalDeblur here, or remote.RemoteDeblur (--server).
Deblur = Callable[[bytes, str, "str | None", "int | None", TilesCallback], Processed]


class LocalDeblur:
    """`process_bytes` on an Engine in this process, reporting progress as tiles done / in all."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings, self.where = engine, settings, engine.provider

    def __call__(
        self, data: bytes, name: str, fmt: str | None, quality: int | None, on_tiles: TilesCallback
    ) -> Processed:
        w, h = probe_size(data) or (1, 1)
        total, done = self.engine.tile_count(max(h, 1), max(w, 1)), 0

        def count(tiles: int) -> None:
            nonlocal done
            done += tiles
            on_tiles(done, total)

        limits = {"max_megapixels": self.settings.max_megapixels, "max_side": self.settings.max_side}
        return process_bytes(self.engine, data, fmt=fmt, quality=quality, on_progress=count, **limits)
