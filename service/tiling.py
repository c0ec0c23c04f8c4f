"""Bounded tiles with overlap and seam-free blending (pure numpy, no I/O).

Why bounded tiles: memory stays flat no matter how large the photo is, and every tile of one photo has
the same shape, so tiles batch and cuDNN picks its algorithm once per photo size. Why these choices:

* The tile size is a ceiling. Along each axis the plan uses as few tiles as the ceiling needs, then
  shrinks them (to the model's size multiple) until they just cover the image with the overlap: at 720p,
  256 px tiles with 32 px overlap become 24 tiles of 208×240, 1.3× the image's pixels instead of 1.7×
  (docs/architecture.md). A photo smaller than a tile is one tile of its own size, rounded up.

* Positions are spread evenly over the image and snapped to the model's size multiple, so a network
  with strided layers sees the same sampling phase as on the whole image. Images (or the last few
  pixels, < size multiple) that do not fill a tile are reflect-padded at the bottom/right (repeated
  reflection, so 1-pixel images work).
* Each tile's weight is a separable raised-cosine ramp on the sides it shares with a neighbour and flat
  (1) on sides that touch the image border, so border pixels are fully covered. The first quarter of
  each ramp is exactly zero: pixels that saw the tile's artificial edge contribute nothing, which makes
  tiled output equal whole-image output (to float precision) whenever the model's receptive radius is at
  most overlap/4. With a larger receptive field the cross-fade spreads the error smoothly: no grid.
* Neighbouring ramps are complementary (they sum to 1), and the accumulated weights are still divided out
  at the end, so any plan is exact in the flat regions.
* Memory is the output (H×W×C float32) plus one H×W weight map plus one batch of tiles; tiles are made
  lazily, batch by batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile: top-left corner in image coordinates (always inside the image) and its grid cell."""

    y: int
    x: int
    row: int
    col: int


def axis_positions(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Tile starts along one axis: evenly spread, multiples of `multiple`, consecutive overlap >= overlap."""
    if length <= tile:
        return [0]
    stride = max(multiple, ((tile - overlap) // multiple) * multiple)
    count = math.ceil((length - tile) / stride) + 1
    last_units = -(-(length - tile) // multiple)  # last start, in units of `multiple` (ceil)
    return [multiple * (-(-i * last_units // (count - 1))) for i in range(count)]


def axis_span(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The tile length along one axis: the shortest multiple of `multiple`, at most `tile`, that covers
    `length` with no more tiles than `tile` itself would need."""
    span = min(tile, -(-length // multiple) * multiple)
    if length <= tile:
        return span
    count = len(axis_positions(length, tile, overlap, multiple))
    needed = max(-(-(length + (count - 1) * overlap) // count), 2 * overlap)  # overlap ≤ half a tile
    span = -(-needed // multiple) * multiple
    while span < tile and len(axis_positions(length, span, overlap, multiple)) > count:
        span += multiple
    return min(span, tile)


def ramp(width: int) -> np.ndarray:
    """Raised-cosine rise over `width` pixels; zero on the first quarter, one on the last quarter.

    ramp(w)[d] + ramp(w)[w - 1 - d] == 1, so two neighbours fading across the same band sum to one.
    """
    if width <= 0:
        return np.ones(0, np.float32)
    margin = width // 4
    core = width - 2 * margin
    d = np.arange(width, dtype=np.float64)
    r = 0.5 - 0.5 * np.cos(np.pi * (d - margin + 0.5) / core)
    r[:margin] = 0.0
    r[width - margin :] = 1.0
    return r.astype(np.float32)


def axis_windows(positions: list[int], tile: int) -> list[np.ndarray]:
    """Per-position 1-D weights: ramps on shared sides (at most half a tile each), flat on border sides."""
    windows = []
    for i, start in enumerate(positions):
        w = np.ones(tile, np.float32)
        if i > 0:
            width = min(positions[i - 1] + tile - start, tile // 2)
            w[:width] *= ramp(width)
        if i < len(positions) - 1:
            width = min(start + tile - positions[i + 1], tile // 2)
            w[tile - width :] *= ramp(width)[::-1]
        windows.append(w)
    return windows


def reflect_indices(start: int, count: int, length: int) -> np.ndarray:
    """Indices start..start+count-1 folded back into [0, length) by repeated mirror reflection."""
    idx = np.arange(start, start + count)
    if length == 1:
        return np.zeros(count, dtype=np.intp)
    period = 2 * (length - 1)
    idx = idx % period
    return np.where(idx >= length, period - idx, idx).astype(np.intp)


class TilePlan:
    """Where the tiles of an H×W image go, their one shape (`tile_height`×`tile_width`, each at most
    `tile`), and how much each pixel of each tile counts."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> None:
        if height < 1 or width < 1:
            raise ValueError("image must be at least 1x1")
        if multiple < 1 or tile % multiple:
            raise ValueError(f"tile size {tile} must be a multiple of {multiple}")
        if not 0 <= overlap <= tile // 2:
            raise ValueError("overlap must be between 0 and half the tile size")
        self.height, self.width, self.tile, self.overlap = height, width, tile, overlap
        self.tile_height = axis_span(height, tile, overlap, multiple)
        self.tile_width = axis_span(width, tile, overlap, multiple)
        self.ys = axis_positions(height, self.tile_height, overlap, multiple)
        self.xs = axis_positions(width, self.tile_width, overlap, multiple)
        self._wy = axis_windows(self.ys, self.tile_height)
        self._wx = axis_windows(self.xs, self.tile_width)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def tiles(self) -> Iterator[Tile]:
        for row, y in enumerate(self.ys):
            for col, x in enumerate(self.xs):
                yield Tile(y, x, row, col)

    def batches(self, size: int) -> Iterator[list[Tile]]:
        batch: list[Tile] = []
        for t in self.tiles():
            batch.append(t)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def extract(self, image: np.ndarray, t: Tile) -> np.ndarray:
        """The tile_height×tile_width crop at `t`, reflect-padded where it runs past the bottom/right edge."""
        th, tw = self.tile_height, self.tile_width
        if t.y + th <= self.height and t.x + tw <= self.width:
            return image[t.y : t.y + th, t.x : t.x + tw]
        rows = reflect_indices(t.y, th, self.height)
        cols = reflect_indices(t.x, tw, self.width)
        return image[rows[:, None], cols[None, :]]

    def weight(self, t: Tile) -> np.ndarray:
        return self._wy[t.row][:, None] * self._wx[t.col][None, :]


class Blender:
    """Accumulates weighted tile outputs into one image; only output + weight map are kept."""

    def __init__(self, plan: TilePlan, channels: int) -> None:
        self.plan = plan
        self.out = np.zeros((plan.height, plan.width, channels), np.float32)
        self.wsum = np.zeros((plan.height, plan.width), np.float32)

    def add(self, t: Tile, result: np.ndarray) -> None:
        h = min(self.plan.tile_height, self.plan.height - t.y)
        w = min(self.plan.tile_width, self.plan.width - t.x)
        wt = self.plan.weight(t)[:h, :w]
        self.out[t.y : t.y + h, t.x : t.x + w] += result[:h, :w] * wt[..., None]
        self.wsum[t.y : t.y + h, t.x : t.x + w] += wt

    def result(self) -> np.ndarray:
        """The blended image (divides in place; the weights are > 0 everywhere by construction)."""
        np.divide(self.out, self.wsum[..., None], out=self.out)
        return self.out


def run_tiled(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    plan: TilePlan,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
    channels_out: int | None = None,
) -> np.ndarray:
    """Apply `fn` ([N,T,T,C] -> [N,T,T,C_out]) over the plan in batches and blend; returns H×W×C_out float32
    (C_out defaults to C; a kernel-aware model reads photo ⊕ hint and writes RGB)."""
    blender = Blender(plan, channels_out or image.shape[2])
    for batch in plan.batches(batch_size):
        stack = np.stack([plan.extract(image, t) for t in batch]).astype(np.float32, copy=False)
        out = fn(stack)
        for t, tile_out in zip(batch, out, strict=True):
            blender.add(t, tile_out)
        if on_batch is not None:
            on_batch(len(batch))
    return blender.result()
