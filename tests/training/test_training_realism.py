"""The optional realism steps of blur synthesis: off by default (bit for bit), and each does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from service.deconvolution import to_linear, to_srgb
from training.config import Config
from training.data import kernels, realism
from training.data.degrade import add_noise, blur_nonuniform, convolve_valid, degrade, quantise
from training.data.folders import list_images, load_photos
from training.data.realism import Realism, Steps
from training.data.synthesis import SyntheticPairs
from training.trainer import synthetic_samplers

ON = Realism(saturation=0.3, tone_curve=0.3, nonuniform=0.3, offcentre=0.3, max_shift=5)


@pytest.fixture(scope="module")
def photos(photo_dir: Path) -> list[np.ndarray]:
    return load_photos(list_images([photo_dir]), 32)[0]


def _old_sample(pairs: SyntheticPairs, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SyntheticPairs.with_kernel and degrade as they were before the realism steps, inlined."""
    rng = np.random.default_rng([pairs.seed, index])
    photo = pairs.photos[rng.integers(len(pairs.photos))]
    _, kernel = kernels.random_kernel(rng, pairs.max_blur, pairs.kernel_weights)
    region = pairs._region(photo, pairs.crop + kernel.shape[0] - 1, rng)
    region = to_srgb(to_linear(region) * rng.uniform(0.75, 1.25))
    lin = to_linear(region)
    blurred = to_srgb(np.stack([fftconvolve(lin[..., c], kernel, mode="valid") for c in range(3)], -1))
    blurred = blurred.astype(np.float32)
    m = (kernel.shape[0] - 1) // 2
    sharp = region[m:m + blurred.shape[0], m:m + blurred.shape[1]]
    level, shot_share = rng.uniform(0, pairs.max_noise), rng.random()
    blurred = add_noise(blurred, rng, shot=shot_share * level**2 * 4, read=(1 - shot_share) * level)
    quality = int(rng.integers(55, 96)) if rng.random() < pairs.jpeg_prob else None
    return quantise(blurred, rng, quality), sharp.astype(np.float32), kernel


def test_default_synthesis_is_bit_for_bit_the_old_one(photos: list[np.ndarray]) -> None:
    plain = SyntheticPairs(photos, 48, seed=5, max_blur=15)
    zeros = SyntheticPairs(photos, 48, seed=5, max_blur=15, realism=Realism(max_shift=5))
    for i in range(6):
        old = _old_sample(plain, i)
        for new in (plain.with_kernel(i), zeros.with_kernel(i)):
            assert all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))


def test_a_sample_no_step_fires_for_is_the_plain_one_and_steps_keep_the_size(photos: list[np.ndarray]) -> None:
    plain = SyntheticPairs(photos, 48, seed=5, max_blur=15)
    on = SyntheticPairs(photos, 48, seed=5, max_blur=15, realism=ON)
    fired = set()
    for i in range(24):
        names = ON.draw(np.random.default_rng([5, i, 1])).names
        fired |= names
        blurred, sharp = on(i)
        assert blurred.shape == sharp.shape == (48, 48, 3) and blurred.dtype == sharp.dtype == np.float32
        assert sharp.min() >= 0 and sharp.max() <= 1
        same = all(np.array_equal(a, b) for a, b in zip(on(i), plain(i), strict=True))
        assert same == (not names)
    assert fired == set(realism.STEPS)


def _streak_scene() -> tuple[np.ndarray, np.ndarray]:
    """A dark scene with a 5×5 white light, and a 7 px horizontal streak kernel (one row of a 7×7 canvas)."""
    region = np.full((40, 40, 3), 0.1, np.float32)
    region[18:23, 18:23] = 1.0
    kernel = np.zeros((7, 7), np.float32)
    kernel[3] = 1 / 7
    return region, kernel


def test_saturated_highlights_leave_clipped_streaks_the_plain_blur_cannot() -> None:
    """Without it the streak of a clipped light is 5/7 of white at most; with it, its real radiance
    (×1.5–4) saturates the streak. The sharp target is the clipped radiance: in this scene, dark or
    clipped white, it does not change."""
    region, kernel = _streak_scene()
    args = dict(max_noise=0.0, jpeg_prob=0.0, exposure=(1.0, 1.0))
    plain_blur, plain_sharp = degrade(region, kernel, np.random.default_rng(0), **args)
    for seed in range(5):
        steps = Steps(frozenset({"saturation"}), np.random.default_rng(seed))
        blurred, sharp = degrade(region, kernel, np.random.default_rng(0), steps=steps, **args)
        assert (blurred == 1.0).sum() >= 3 * 5 * 3  # 3 fully covered positions × 5 rows × 3 channels
        assert np.allclose(sharp, plain_sharp, atol=1e-5)
    assert (plain_blur == 1.0).sum() == 0 and plain_blur.max() < 0.9


def test_tone_curve_is_a_monotonic_s_curve() -> None:
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    y = realism.tone_curve(x, 2.2, 1.6, 0.45)
    assert y[0] == 0 and abs(y[-1] - 1) < 1e-6 and np.all(np.diff(y) >= 0)
    power = x ** (1 / 2.2)
    below, above = power < 0.45 - 1e-3, power > 0.45 + 1e-3
    assert np.all(y[below][1:] < power[below][1:]) and np.all(y[above][:-1] > power[above][:-1])  # S around the pivot
    assert np.allclose(realism.tone_curve(x, 2.2, 1.0, 0.45), power, atol=1e-6)  # contrast 1: plain power law


def test_tone_curve_encodes_both_images_alike_after_a_blur_in_linear_light() -> None:
    """A 2-tap box blurs a black/white edge to linear 0.5: the blurred edge must read exactly like a
    sharp patch of linear 0.5 under the same curve, which differs from gamma 2.2."""
    region = np.zeros((24, 24, 3), np.float32)
    region[:, 12:] = 1.0
    region[:4, :6] = to_srgb(np.float32(0.5))
    box = np.zeros((3, 3), np.float32)
    box[1, 1:] = 0.5
    steps = Steps(frozenset({"tone_curve"}), np.random.default_rng(1))
    blurred, sharp = degrade(region, box, np.random.default_rng(0), 0.0, 0.0, (1.0, 1.0), steps)
    assert np.allclose(blurred[5:, 11], quantise(sharp[:3, :4])[0, 0], atol=1 / 255 + 1e-6)
    assert abs(sharp[0, 0, 0] - to_srgb(np.float32(0.5))) > 0.03
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1.0
    ramp = np.tile(np.linspace(0, 1, 24, dtype=np.float32)[None, :, None], (24, 1, 3))
    blurred, sharp = degrade(ramp, delta, np.random.default_rng(0), 0.0, 0.0, (1.0, 1.0),
                             Steps(frozenset({"tone_curve"}), np.random.default_rng(1)))
    assert np.array_equal(blurred, quantise(sharp))


def test_non_uniform_blur_changes_across_the_crop_and_is_uniform_for_one_kernel() -> None:
    linear = np.random.default_rng(0).random((60, 70, 3), dtype=np.float32)
    kernel = kernels.line_kernel(np.random.default_rng(1), 13)
    assert np.allclose(realism.tilted_kernel(kernel, 0.0, 1.0), kernel, rtol=0, atol=1e-9)
    turned = realism.tilted_kernel(kernel, *realism.random_tilt(np.random.default_rng(2)))
    assert turned.shape == kernel.shape and abs(turned.sum() - 1) < 1e-5 and not np.allclose(turned, kernel)
    weight = realism.ramp((60 - 14, 70 - 14), 0.0)  # 0 at the left edge, 1 at the right
    assert np.allclose(blur_nonuniform(linear, kernel, kernel, weight), convolve_valid(linear, kernel), atol=1e-6)
    mixed = blur_nonuniform(linear, kernel, turned, weight)
    first, second = convolve_valid(linear, kernel), convolve_valid(linear, turned)
    assert mixed.shape == first.shape
    assert np.allclose(mixed[:, 0], first[:, 0], atol=1e-6) and np.allclose(mixed[:, -1], second[:, -1], atol=1e-6)
    assert np.abs(first[:, -1] - second[:, -1]).mean() > 10 * np.abs(mixed[:, 0] - first[:, 0]).mean() + 1e-3


def _centroid_offset(kernel: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[: kernel.shape[0], : kernel.shape[1]]
    c = (kernel.shape[0] - 1) / 2
    return float((kernel * yy).sum() / kernel.sum() - c), float((kernel * xx).sum() / kernel.sum() - c)


def test_tilted_kernels_turn_about_the_centroid_so_an_off_centre_shift_is_kept() -> None:
    """Turning commutes with the off-centre padding (a turn about the canvas centre would not), and
    keeps the sum and the centroid, for kernels of every family."""
    for family in range(len(kernels.FAMILIES)):
        weights = tuple(float(f == family) for f in range(len(kernels.FAMILIES)))
        for seed in range(3):
            _, k = kernels.random_kernel(np.random.default_rng(seed), 25.0, weights)
            for angle, (dy, dx) in ((8.0, (4, -2)), (-8.0, (-5, 5)), (3.0, (0, 3))):
                moved = realism.tilted_kernel(realism.offcentre_kernel(k, dy, dx), angle, 0.85)
                assert np.allclose(moved, realism.offcentre_kernel(realism.tilted_kernel(k, angle, 0.85), dy, dx),
                                   atol=1e-7)
                assert abs(moved.sum() - 1) < 1e-5
                before, after = _centroid_offset(k), _centroid_offset(moved)
                assert after == pytest.approx((before[0] + dy, before[1] + dx), abs=1e-3)


def test_tilted_kernels_cap_the_scale_where_the_mass_would_leave_the_canvas() -> None:
    """A kernel filling its canvas up to the 1 px margin, turned 8° and grown 1.1× as asked, would
    reach past the canvas; the cap keeps all of it on, so the centroid does not move (clamping would
    move it, the weights being uneven)."""
    full = np.zeros((21, 21), np.float32)
    full[1:-1, 1:-1] = np.random.default_rng(0).uniform(0.2, 1.0, (19, 19))
    full /= full.sum()
    for angle in (-8.0, 8.0):
        turned = realism.tilted_kernel(full, angle, 1.1)
        assert abs(turned.sum() - 1) < 1e-5 and turned.min() >= 0
        assert _centroid_offset(turned) == pytest.approx(_centroid_offset(full), abs=1e-5)
    angles, scales = zip(*(realism.random_tilt(np.random.default_rng(i)) for i in range(200)), strict=True)
    assert max(map(abs, angles)) <= 8 and min(scales) >= 0.9 and max(scales) <= 1.1


def _shift(blurred: np.ndarray, sharp: np.ndarray) -> tuple[int, int]:
    """Whole-pixel displacement of `blurred`'s content relative to `sharp`: the peak of their
    cross-correlation (Hann-windowed, so the crops' borders do not wrap into a peak at 0)."""
    window = np.outer(np.hanning(sharp.shape[0]), np.hanning(sharp.shape[1]))
    a, b = ((x.mean(-1) - x.mean()) * window for x in (blurred, sharp))
    corr = np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))).real
    (h, w), (dy, dx) = corr.shape, np.unravel_index(np.argmax(corr), corr.shape)
    return (int(dy) + h // 2) % h - h // 2, (int(dx) + w // 2) % w - w // 2


def test_off_centre_kernels_shift_the_blurred_image_but_not_the_sharp_target() -> None:
    """The blurred image moves by the kernel's centroid offset, measured by cross-correlation on
    white-noise photos (whose autocorrelation is a spike) blurred by symmetric Gaussian kernels."""
    k = kernels.gaussian_kernel(np.random.default_rng(0), 7)
    moved = realism.offcentre_kernel(k, 2, -3)
    assert moved.shape == (k.shape[0] + 6,) * 2 and moved.sum() == pytest.approx(k.sum())
    assert _centroid_offset(moved) == pytest.approx((2, -3), abs=1e-4)
    photos = [np.random.default_rng(i).integers(0, 256, (160, 160, 3)).astype(np.uint8) for i in range(3)]
    gaussians = (0.0, 0.0, 0.0, 0.0, 1.0)
    kw = dict(max_blur=15, kernel_weights=gaussians, max_noise=0.0, jpeg_prob=0.0)
    centred = SyntheticPairs(photos, 64, seed=2, **kw)
    shifts = []
    for steps in (Realism(offcentre=1.0, max_shift=5), Realism(nonuniform=1.0, offcentre=1.0, max_shift=5)):
        pairs = SyntheticPairs(photos, 64, seed=2, realism=steps, **kw)  # a non-uniform blend keeps the shift
        for i in range(12):
            blurred, sharp, kernel = pairs.with_kernel(i)
            offset = tuple(round(v) for v in _centroid_offset(kernel))
            assert max(map(abs, offset)) <= 5 and _shift(blurred, sharp) == offset
            assert _shift(*centred.with_kernel(i)[:2]) == (0, 0)
            shifts.append(offset)
    assert len(set(shifts)) > 12


def test_the_config_turns_the_steps_on_for_training_samples_only(tiny_overrides: list[str]) -> None:
    keys = ["saturation_prob=0.3", "tone_curve_prob=0.2", "nonuniform_blur_prob=0.1", "offcentre_prob=0.4",
            "offcentre_max_shift=5"]
    train, val = synthetic_samplers(Config.load(None, tiny_overrides + keys))
    assert train.realism == Realism(0.3, 0.2, 0.1, 0.4, 5) and val.realism == realism.OFF
    assert Config().realism() == realism.OFF
    shipped = Config.load(Path(__file__).parents[2] / "models" / "train-config-realism.json")
    assert shipped.realism() == ON and shipped.run_dir == "runs/realism"


@pytest.mark.parametrize(("override", "message"), [
    ("saturation_prob=1.5", "config key 'saturation_prob' is a probability: 1.5 is outside [0, 1]"),
    ("tone_curve_prob=-0.1", "config key 'tone_curve_prob' is a probability: -0.1 is outside [0, 1]"),
    ("nonuniform_blur_prob=2", "config key 'nonuniform_blur_prob' is a probability: 2.0 is outside [0, 1]"),
    ("offcentre_prob=NaN", "config key 'offcentre_prob' is a probability: nan is outside [0, 1]"),
    ("offcentre_max_shift=-2", "config key 'offcentre_max_shift' is a distance in px: -2 is negative"),
    ("offcentre_prob=0.3", "offcentre_prob 0.3 shifts kernels by up to offcentre_max_shift px, which is 0"),
])
def test_bad_realism_values_are_rejected_when_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Config.load(None, [override])
    assert message in str(caught.value)
