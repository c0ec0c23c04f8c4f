"""Blur kernels, degradation, synthetic and paired data: determinism, shapes and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.config import Config
from training.data import kernels
from training.data.degrade import blur_linear, degrade
from training.data.folders import DataError, is_validation, list_images, load_photos, split_photos
from training.data.paired import PairedCrops, find_pairs
from training.data.protocol import protocol_pair
from training.data.synthesis import SyntheticPairs
from training.trainer import synthetic_samplers


@pytest.mark.parametrize("family", kernels.FAMILIES)
def test_every_kernel_family_is_a_centred_normalised_psf(family: str) -> None:
    rng = np.random.default_rng(7)
    weights = tuple(1.0 if f == family else 0.0 for f in kernels.FAMILIES)
    for _ in range(20):
        name, k = kernels.random_kernel(rng, 41, weights)
        assert name == family
        assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
        assert k.min() >= 0 and abs(k.sum() - 1) < 1e-5
        yy, xx = np.mgrid[: k.shape[0], : k.shape[1]]
        centre = (k.shape[0] - 1) / 2
        assert abs((k * yy).sum() - centre) <= 1.0 and abs((k * xx).sum() - centre) <= 1.0
        assert k.shape[0] <= 41 + 4


def test_kernels_are_reproducible_per_seed_and_differ_across_seeds() -> None:
    a = kernels.random_kernel(np.random.default_rng(3))[1]
    b = kernels.random_kernel(np.random.default_rng(3))[1]
    c = kernels.random_kernel(np.random.default_rng(4))[1]
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_the_curve_family_is_off_by_default_so_earlier_draws_are_unchanged() -> None:
    """Runs and the own protocol made before the family existed pass five weights; they must draw the
    very same kernels as the default, which lists curve last at weight 0."""
    historical = kernels.DEFAULT_KERNEL_WEIGHTS[:5]
    assert kernels.DEFAULT_KERNEL_WEIGHTS[5:] == (0.0,)
    for seed in range(40):
        a = kernels.random_kernel(np.random.default_rng(seed), 41, historical)
        b = kernels.random_kernel(np.random.default_rng(seed), 41)
        assert a[0] == b[0] != "curve" and np.array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="up to 6 non-negative numbers .* got 1 1 1 1 1 1 1"):
        kernels.random_kernel(np.random.default_rng(0), 41, (1,) * 7)


def test_curves_vary_in_shape_and_keep_their_mass_off_the_canvas_border() -> None:
    """Random curves: straight strokes to bends, never clipped (an uneven dwell moves the centroid)."""
    rng = np.random.default_rng(2)
    bends = []
    for _ in range(40):
        k = kernels.curve_kernel(rng, rng.uniform(9, 57))
        border = np.concatenate([k[0], k[-1], k[:, 0], k[:, -1]])
        assert border.sum() < 1e-3  # a clipped path would pile its overshoot up on the border
        rows, cols = np.nonzero(k > 0.05 * k.max())
        points = np.stack([rows, cols], 1).astype(float)
        spread = np.linalg.svd(points - points.mean(0), compute_uv=False)
        bends.append(spread[1] / spread[0])  # 0 for a straight stroke, larger when the path bends
    assert min(bends) < 0.1 and max(bends) > 0.4


def test_max_motion_widens_shake_and_streak_extents_only() -> None:
    """0 keeps the historical cap (35 px: canvases ≤ 37), a larger max_motion reaches past it (for
    curves too), and the other families keep max_extent's caps."""
    def canvases(max_motion: float, weights: tuple[float, ...]) -> list[int]:
        rng = np.random.default_rng(11)
        return [kernels.random_kernel(rng, 41, weights, max_motion)[1].shape[0] for _ in range(120)]

    for motion_family in ((1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 0, 0, 0, 1)):
        assert max(canvases(0, motion_family)) <= 37
        wide = canvases(55, motion_family)
        assert max(wide) > 45 and max(wide) <= 57
    blobs = (0, 0, 0, 1, 0)
    assert canvases(55, blobs) == canvases(0, blobs)


def test_max_motion_applies_to_training_samples_only(tiny_overrides: list[str]) -> None:
    train, val = synthetic_samplers(Config.load(None, [*tiny_overrides, "max_motion=21"]))
    assert (train.max_motion, val.max_motion) == (21, 0)
    with pytest.raises(ValueError, match="'max_motion' is 0 .* or an extent of at least 3 px: 2.0 is neither"):
        Config.load(None, [*tiny_overrides, "max_motion=2"])


def test_kernel_weights_in_a_config_are_checked_when_it_loads(tiny_overrides: list[str]) -> None:
    for weights in ("[1,1,1,1,1,1,1]", "[1,-1]", "[0,0]"):
        with pytest.raises(ValueError, match="config key 'kernel_weights': kernel weights are up to 6"):
            Config.load(None, [*tiny_overrides, f"kernel_weights={weights}"])


def test_line_kernel_spans_its_length() -> None:
    k = kernels.line_kernel(np.random.default_rng(0), 21)
    rows, cols = np.nonzero(k > 1e-4)
    assert max(np.ptp(rows), np.ptp(cols)) >= 14


def test_blur_in_linear_light_keeps_flat_areas_and_softens_edges() -> None:
    img = np.zeros((40, 40, 3), np.float32)
    img[:, 20:] = 1.0
    k = np.ones((1, 9), np.float32) / 9
    out = blur_linear(img, k)
    assert out.shape == (40, 32, 3)
    assert out[:, :8].max() < 1e-3 and np.allclose(out[:, -4:], 1.0, atol=1e-6)
    edge = out[0, 12:20, 0]
    assert np.all(np.diff(edge) >= 0) and 0 < edge[4] < 1
    # linear light: half coverage of white is brighter than 0.5 in sRGB
    assert out[0, 16, 0] > 0.6


def test_degrade_returns_aligned_pairs_of_the_requested_size() -> None:
    rng = np.random.default_rng(0)
    k = kernels.defocus_kernel(rng, 7)
    region = np.random.default_rng(1).random((64 + k.shape[0] - 1,) * 2 + (3,), dtype=np.float32)
    blurred, sharp = degrade(region, k, rng)
    assert blurred.shape == sharp.shape == (64, 64, 3)
    assert blurred.dtype == sharp.dtype == np.float32
    assert np.allclose(blurred * 255, np.rint(blurred * 255), atol=1e-3)  # 8-bit like a real photo


def test_synthetic_pairs_are_deterministic_per_index(photo_dir: Path) -> None:
    photos, _, _ = load_photos(list_images([photo_dir]), 32)
    pairs = SyntheticPairs(photos, 48, seed=5, max_blur=15)
    a, b, c = pairs(3), pairs(3), pairs(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == a[1].shape == (48, 48, 3)


def test_scale_range_sets_how_far_the_photo_is_downscaled_before_cropping() -> None:
    """A ramp rising 1/1000 per pixel: a crop's slope tells the scale it was taken at (flips and
    transposes only change its sign or axis)."""
    photo = np.rint(np.tile(np.linspace(0, 255, 1001)[None, :, None], (600, 1, 3))).astype(np.uint8)

    def slopes(scale_range: tuple[float, float]) -> list[float]:
        pairs = SyntheticPairs([photo], 128, seed=1, scale_range=scale_range)
        regions = [pairs._region(photo, 128, np.random.default_rng(i)) for i in range(12)]
        return [1000 * float(abs(np.diff(r[64, :, 0]).mean()) + abs(np.diff(r[:, 64, 0]).mean())) for r in regions]

    assert all(0.95 < s < 1.05 for s in slopes((1.0, 1.0)))  # native resolution
    assert all(1.9 < s < 2.1 for s in slopes((0.5, 0.5)))  # halved: twice the change per pixel
    assert all(0.95 < s < 2.1 for s in slopes((0.5, 1.0)))


def test_validation_split_is_stable_by_file_name() -> None:
    names = [Path(f"img{i}.jpg") for i in range(400)]
    held = [p for p in names if is_validation(p, 0.12)]
    assert 25 < len(held) < 75
    assert held == [p for p in names if is_validation(Path("/other/dir") / p.name, 0.12)]


def test_unreadable_and_small_photos_are_skipped_and_counted(photo_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "truncated.png").write_bytes((photo_dir / "photo00.png").read_bytes()[:200])
    (tmp_path / "text.jpg").write_text("not an image")
    Image.new("RGB", (20, 20)).save(tmp_path / "tiny.png")
    Image.new("RGB", (80, 80), "red").save(tmp_path / "good.png")
    photos, kept, skipped = load_photos(list_images([tmp_path]), 32)
    assert [p.name for p in kept] == ["good.png"] and len(photos) == 1 and skipped == 3


def test_missing_or_empty_photo_folders_say_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_images([tmp_path / "nope"])
    with pytest.raises(DataError, match="no images"):
        list_images([tmp_path])
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="no usable training photos"):
        split_photos([tmp_path], 0.0, 64)


def _pair_dirs(root: Path, names_blur: list[str], names_sharp: list[str], size=(64, 48)) -> None:
    for sub, names in (("blur", names_blur), ("sharp", names_sharp)):
        (root / sub).mkdir(parents=True)
        for n in names:
            Image.new("RGB", size, "gray").save(root / sub / n)


def test_gopro_layout_and_plain_pairs_are_found(tmp_path: Path) -> None:
    _pair_dirs(tmp_path / "gopro" / "train" / "scene1", ["a.png", "b.png"], ["a.png", "b.png"])
    _pair_dirs(tmp_path / "gopro" / "train" / "scene2", ["c.png"], ["c.png"])
    assert len(find_pairs(tmp_path / "gopro", "train")) == 3
    _pair_dirs(tmp_path / "plain", ["x.png"], ["x.png"])
    assert [b.name for b, _ in find_pairs(tmp_path / "plain")] == ["x.png"]


def test_unmatched_names_and_bad_layouts_are_clear_errors(tmp_path: Path) -> None:
    _pair_dirs(tmp_path / "p", ["a.png", "b.png"], ["a.png", "c.png"])
    with pytest.raises(DataError, match=r"2 file name\(s\).*b.png, c.png"):
        find_pairs(tmp_path / "p")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a GoPro root"):
        find_pairs(tmp_path / "empty")


def test_paired_crops_reject_images_smaller_than_the_crop_and_skip_bad_files(tmp_path: Path) -> None:
    _pair_dirs(tmp_path / "p", ["a.png"], ["a.png"], size=(20, 20))
    crops = PairedCrops(find_pairs(tmp_path / "p"), crop=32, seed=0)
    with pytest.raises(DataError, match="unreadable pairs"):
        crops(0)
    assert crops.skipped == 10
    _pair_dirs(tmp_path / "q", ["a.png", "b.png"], ["a.png", "b.png"])
    (tmp_path / "q" / "blur" / "b.png").write_bytes(b"garbage")
    crops = PairedCrops(find_pairs(tmp_path / "q"), crop=32, seed=0)
    blur, sharp = crops(0)
    assert blur.shape == sharp.shape == (32, 32, 3)


def test_protocol_is_fixed_per_photo_name() -> None:
    sharp = np.random.default_rng(0).random((120, 140, 3), dtype=np.float32)
    a = protocol_pair(sharp, "x.jpg")
    b = protocol_pair(sharp, "x.jpg")
    assert np.array_equal(a[0], b[0]) and a[2] == b[2] and np.array_equal(a[3], b[3])
    assert a[0].shape == a[1].shape


def test_photo_fetcher_keeps_really_blurred_photos_out_of_training(tmp_path) -> None:
    """A photo listed as really blurred goes to real-blur/ only, and a stale training copy is removed."""
    from PIL import Image

    from training.data.fetch import _collect

    root = tmp_path / "pkg"
    (root / "img").mkdir(parents=True)
    for name in ("sharp.jpg", "Storm.jpg"):
        Image.new("RGB", (40, 30), "gray").save(root / "img" / name)
    out = tmp_path / "photos"
    (out / "train" / "pkg").mkdir(parents=True)
    (out / "train" / "pkg" / "Storm.jpg").write_bytes(b"left by an older fetch")
    sources: list[dict] = []
    _collect(root, ["img/*.jpg"], out / "train" / "pkg", "pkg", "1.0", "lic", sources, exclude=["img/Storm.jpg"])
    _collect(root, ["img/Storm.jpg"], out / "real-blur", "pkg", "1.0", "lic", sources)
    assert sorted(p.name for p in (out / "train" / "pkg").iterdir()) == ["sharp.jpg"]
    assert [p.name for p in (out / "real-blur").iterdir()] == ["Storm.jpg"]
    assert [(s["file"], s["folder"]) for s in sources] == [("sharp.jpg", "pkg"), ("Storm.jpg", "real-blur")]
    (out / "independent" / "pkg").mkdir(parents=True)
    (out / "independent" / "pkg" / "old.jpg").write_bytes(b"left by an older fetch")
    _collect(root, ["img/sharp.jpg"], out / "independent" / "pkg", "pkg", "1.0", "lic", sources)
    assert [p.name for p in (out / "independent" / "pkg").iterdir()] == ["sharp.jpg"]
    assert [s["set"] for s in sources] == ["train", "real-blur", "independent"]


def test_training_reads_every_suffix_the_cli_does(tmp_path: Path) -> None:
    from service.cli import collect

    for suffix in (".png", ".jpe", ".JPEG", ".tif"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"a{suffix}", format="PNG" if suffix == ".png" else None)
    (tmp_path / "notes.txt").write_text("not an image")
    jobs, _ = collect([str(tmp_path)], recursive=False)
    assert sorted(p.name for p in list_images([tmp_path])) == sorted(j.src.name for j in jobs) == [
        "a.JPEG", "a.jpe", "a.png", "a.tif"]
