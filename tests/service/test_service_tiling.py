"""Tile plan and blending, without ONNX: numpy stand-ins for the model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from service.tiling import TilePlan, axis_positions, axis_span, axis_windows, ramp, reflect_indices, run_tiled


def box3(batch: np.ndarray) -> np.ndarray:
    """A 3×3 mean filter with zero padding, like a conv layer (receptive radius 1)."""
    padded = np.pad(batch, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = batch.shape[1:3]
    return sum(padded[:, dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"),
    [(1, 64, 16, 8), (64, 64, 16, 8), (65, 64, 16, 8), (1000, 256, 32, 16), (513, 64, 32, 1), (200, 32, 0, 4)],
)
def test_positions_cover_with_overlap_on_the_size_grid(length, tile, overlap, multiple):
    pos = axis_positions(length, tile, overlap, multiple)
    assert pos[0] == 0 and pos[-1] < length and pos[-1] + tile >= length
    assert all(p % multiple == 0 for p in pos)
    assert all(a + tile - b >= overlap for a, b in itertools.pairwise(pos))
    if length > tile:
        assert pos[-1] + tile - length < multiple  # at most size_multiple - 1 pixels of padding


def test_ramps_are_complementary_and_zero_at_the_seam():
    for width in range(1, 40):
        r = ramp(width)
        np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)
        assert (r[: width // 4] == 0).all()


def random_layouts(seed: int, count: int = 300):
    """(size multiple, tile, overlap, rng) for `count` random valid tile settings."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        k = int(rng.choice([1, 2, 8, 16]))
        tile = k * int(rng.integers(max(2, 16 // k), 128 // k + 1))
        yield k, tile, int(rng.integers(0, tile // 2 + 1)), rng


def test_weights_cover_every_pixel_for_many_layouts():
    for k, tile, overlap, rng in random_layouts(0):
        if (tile - overlap) // k < 1:
            continue
        length = int(rng.integers(1, 600))
        pos = axis_positions(length, tile, overlap, k)
        total = np.zeros(length + tile)
        for start, w in zip(pos, axis_windows(pos, tile), strict=True):
            total[start : start + tile] += w
        assert total[:length].min() > 1e-3


def test_reflect_indices_handle_tiny_lengths():
    assert reflect_indices(0, 5, 1).tolist() == [0] * 5
    assert reflect_indices(0, 6, 2).tolist() == [0, 1, 0, 1, 0, 1]
    assert reflect_indices(2, 6, 4).tolist() == [2, 3, 2, 1, 0, 1]


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 70), (70, 1), (5, 3), (64, 64), (65, 130), (150, 97)])
def test_tiles_of_a_plan_share_one_bounded_shape_and_identity_is_exact(h, w):
    image = np.random.default_rng(1).random((h, w, 3), dtype=np.float32)
    plan = TilePlan(h, w, tile=32, overlap=8, multiple=8)
    shapes = []

    def fn(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return batch

    out = run_tiled(image, fn, plan, batch_size=3)
    assert out.shape == (h, w, 3)
    assert all(s[1:] == (plan.tile_height, plan.tile_width, 3) and 1 <= s[0] <= 3 for s in shapes)
    assert plan.tile_height <= 32 and plan.tile_width <= 32
    assert plan.tile_height % 8 == 0 and plan.tile_width % 8 == 0
    assert sum(s[0] for s in shapes) == len(plan)
    np.testing.assert_allclose(out, image, atol=1e-6)


@pytest.mark.parametrize(("length", "tile", "overlap", "multiple"),
                         [(720, 256, 32, 16), (1280, 256, 32, 16), (1080, 256, 32, 16), (1000, 64, 16, 8),
                          (100, 256, 32, 16), (1, 256, 32, 16), (257, 256, 32, 16), (513, 64, 32, 1)])
def test_spans_are_the_shortest_that_keep_the_tile_count(length, tile, overlap, multiple):
    """Shrunk tiles never cost an extra tile, still cover with the overlap, and one multiple less would
    need more tiles (or stop covering): the least padding for the same number of model calls."""
    span = axis_span(length, tile, overlap, multiple)
    count = len(axis_positions(length, tile, overlap, multiple))
    assert span % multiple == 0 and span <= tile
    positions = axis_positions(length, span, overlap, multiple)
    assert len(positions) == count and positions[-1] + span >= length
    assert all(a + span - b >= overlap for a, b in itertools.pairwise(positions))
    shorter = span - multiple
    if shorter >= max(2 * overlap, 1):
        assert len(axis_positions(length, shorter, overlap, multiple)) > count or (count == 1 and shorter < length)


def test_fitted_plans_are_exact_for_many_layouts():
    for k, tile, overlap, rng in random_layouts(3):
        h, w = (int(n) for n in rng.integers(1, 400, 2))
        plan = TilePlan(h, w, tile, overlap, k)
        for span, starts in ((plan.tile_height, plan.ys), (plan.tile_width, plan.xs)):
            assert span % k == 0 and span <= tile and (len(starts) == 1 or 2 * overlap <= span)
        image = rng.random((h, w, 1)).astype(np.float32)
        np.testing.assert_allclose(run_tiled(image, lambda batch: batch, plan, 4), image, atol=1e-5)


def test_a_720p_frame_runs_a_third_fewer_pixels_than_square_tiles():
    plan = TilePlan(720, 1280, tile=256, overlap=32, multiple=16)
    assert (len(plan), plan.tile_height, plan.tile_width) == (24, 208, 240)
    assert len(plan) * plan.tile_height * plan.tile_width / (720 * 1280) < 1.31  # 256² tiles: 1.71


def test_local_filter_tiled_equals_whole_image():
    """Receptive radius 1 <= overlap/4: the blended result is the whole-image result."""
    image = np.random.default_rng(2).random((131, 203, 3), dtype=np.float32)
    plan = TilePlan(131, 203, tile=48, overlap=8, multiple=1)
    assert len(plan) > 4
    tiled = run_tiled(image, box3, plan, batch_size=4)
    whole = box3(image[None])[0]
    # image borders agree too: border tiles touch the image edge, where both see zero padding,
    # except the bottom/right tiles which are reflect-padded only when the image is smaller than a tile.
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_bad_plans_are_refused():
    with pytest.raises(ValueError):
        TilePlan(0, 5, 32, 8)
    with pytest.raises(ValueError):
        TilePlan(5, 5, 30, 8, multiple=8)
    with pytest.raises(ValueError):
        TilePlan(5, 5, 32, 17)
