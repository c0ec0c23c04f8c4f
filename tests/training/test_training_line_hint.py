"""A refiner that reads the line hint (service/kernel_aware.py's LINE_HINT_NAME) beside the guided one:
it starts as the one-hint refiner it grows from, trains, exports with parity and is served."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

LINE = "wiener-corrected+line"


@pytest.fixture
def corrector(tmp_path: Path) -> Path:
    import onnx

    from training.kernel_corrector import build_corrector, to_onnx
    path = tmp_path / "corrector.onnx"
    onnx.save(to_onnx(build_corrector(15, width=2)), path)
    return path


def test_a_line_hint_net_starts_as_the_one_hint_net_and_exports_with_parity(tiny_overrides: list[str],
                                                                           corrector: Path) -> None:
    from training.config import Config
    from training.export import check_parity
    from training.nets import build_generator
    from training.nets.nafunet import transfer_weights
    from training.nets.nafunet_onnx import nafunet_to_onnx
    cfg = Config.load(None, [*tiny_overrides, "hint=wiener"])
    one, two = build_generator(cfg), build_generator(dataclasses.replace(cfg, hint=LINE))
    rng = np.random.default_rng(1)
    for w in one.weights:
        w.assign(rng.normal(0, 0.1, w.shape).astype(w.dtype))
    assert transfer_weights(one, two) == ["hint2_stem"]
    x = rng.random((2, 24, 40, 7)).astype(np.float32)
    np.testing.assert_array_equal(two(x).numpy(), one(x[..., :6]).numpy())  # the new stem starts at zero
    for w in two.weights:
        w.assign(rng.normal(0, 0.1, w.shape).astype(w.dtype))
    model = nafunet_to_onnx(two)
    assert model.graph.input[0].type.tensor_type.shape.dim[3].dim_value == 7
    assert check_parity(lambda batch: two(batch).numpy(), model, tolerance=1e-4) < 1e-4


def test_line_hinted_samples_carry_the_line_hint_whatever_made_the_first(make_photo, identity_onnx: Path) -> None:
    from service.engine import Engine
    from service.kernel_aware import hinted_input, line_hint
    from training.data.hinted import HintedPairs
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15, kernel_weights=(0, 1))
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    plain = HintedPairs(source, guide, seed=5)
    lined = HintedPairs(source, guide, true_share=0.5, seed=5, wrong_share=0.3, hint=LINE)
    right = HintedPairs(source, guide, true_share=0.5, seed=5, wrong_share=0.3)
    for index in range(6):
        blurred, _, _ = source.with_kernel(index)
        made, _ = lined(index)
        assert made.shape == (48, 48, 7)
        np.testing.assert_array_equal(made[..., :6], right(index)[0])  # the first hint's shares are unchanged
        np.testing.assert_allclose(made[..., 6:], np.clip(line_hint(blurred)[0], 0, 1), atol=1e-6)
    estimated = hinted_input(source(0)[0], lambda window: guide.deblur(source(0)[0][window]).image)
    np.testing.assert_array_equal(plain(0)[0], estimated)


def test_a_share_of_line_hints_is_made_with_the_true_kernel(make_photo, identity_onnx: Path,
                                                            tiny_overrides: list[str]) -> None:
    from service.engine import Engine
    from service.kernel_aware import line_hint
    from service.kernel_estimation import centre_on_centroid
    from training.config import Config
    from training.data.hinted import HintedPairs
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15, kernel_weights=(1, 1))
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    cepstral = HintedPairs(source, guide, true_share=0.3, seed=5, hint=LINE)
    told = HintedPairs(source, guide, true_share=0.3, seed=5, hint=LINE, line_true_share=1.0)
    half = HintedPairs(source, guide, true_share=0.3, seed=5, hint=LINE, line_true_share=0.5)
    for index in range(4):
        blurred, _, kernel = source.with_kernel(index)
        made = told(index)[0]
        np.testing.assert_array_equal(made[..., :6], cepstral(index)[0][..., :6])  # the first hint is unchanged
        truth = centre_on_centroid(kernel.astype(np.float64))
        np.testing.assert_allclose(made[..., 6:], np.clip(line_hint(blurred, kernel_of=lambda _r, k=truth: k)[0], 0, 1),
                                   atol=1e-6)
    kinds = {np.array_equal(half(i)[0], told(i)[0]) for i in range(12)}
    assert kinds == {True, False}  # some line hints are the cepstrum's, some the truth's
    for bad in (["hint=wiener", "hint_line_true_share=0.3"],
                [f"hint={LINE}", "hint_corrector=c.onnx", "hint_line_true_share=1.5"]):
        with pytest.raises(ValueError, match="hint_line_true_share"):
            Config.load(None, [*tiny_overrides, *bad])


def test_line_hints_can_be_true_exactly_where_the_first_hint_is_wrong(make_photo, identity_onnx: Path,
                                                                     tiny_overrides: list[str]) -> None:
    from service.engine import Engine
    from training.config import Config
    from training.data.hinted import HintedPairs
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 120, 120) for i in range(2)]
    source = SyntheticPairs(photos, 48, seed=5, max_blur=15, kernel_weights=(1, 1))
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    shares = {"true_share": 0.3, "wrong_share": 0.4, "seed": 5, "hint": LINE}
    cepstral = HintedPairs(source, guide, **shares)
    told = HintedPairs(source, guide, **shares, line_true_share=1.0)
    correlated = HintedPairs(source, guide, **shares, line_true_when_wrong=1.0)
    wrong_first = set()
    for index in range(16):
        draw = np.random.default_rng([5, index, 2]).random()  # HintedPairs' draw of the first hint's kind
        made = correlated(index)[0]
        np.testing.assert_array_equal(made[..., :6], cepstral(index)[0][..., :6])  # the first hint is unchanged
        expected = told if 0.3 <= draw < 0.7 else cepstral
        np.testing.assert_array_equal(made[..., 6:], expected(index)[0][..., 6:])
        wrong_first.add(0.3 <= draw < 0.7)
    assert wrong_first == {True, False}
    for bad in ([f"hint={LINE}", "hint_corrector=c.onnx", "hint_line_true_when_wrong=0.5"],  # no wrong hints
                ["hint=wiener", "hint_wrong_share=0.3", "hint_line_true_when_wrong=0.5"]):    # no line hint
        with pytest.raises(ValueError, match="hint_line_true_when_wrong"):
            Config.load(None, [*tiny_overrides, *bad])


def test_a_line_hint_run_grows_from_one_hint_weights_exports_and_serves(tiny_overrides: list[str],
                                                                        identity_onnx: Path, corrector: Path,
                                                                        tmp_path: Path) -> None:
    from service.engine import Engine
    from service.kernel_aware import line_hint
    from training.config import Config
    from training.export import main as export_main
    from training.nets import build_generator
    from training.trainer import initialise_generator, train
    common = [*tiny_overrides, "steps=2", f"hint_guide={identity_onnx}", "crop=48", "val_crop=48"]
    one = train(Config.load(None, [*common, "hint=wiener", f"run_dir={tmp_path / 'one'}"]))
    overrides = [*common, f"hint={LINE}", f"hint_corrector={corrector}", f"run_dir={tmp_path / 'two'}",
                 f"init_weights={one / 'generator.weights.h5'}"]
    cfg = Config.load(None, overrides)
    grown, source = build_generator(cfg), build_generator(Config.load(None, [*common, "hint=wiener"]))
    source.load_weights(one / "generator.weights.h5")
    initialise_generator(grown, cfg)
    assert np.array_equal(grown.get_layer("hint_stem").get_weights()[0], source.get_layer("hint_stem").get_weights()[0])
    assert not np.any(grown.get_layer("hint2_stem").get_weights()[0])
    run_dir = train(cfg)
    with np.load(run_dir / "ckpt.npz") as data:
        assert any(data[k].shape[:3] == (3, 3, 4) for k in data.files if k.startswith("g/"))  # 1 channel, unshuffled
    out = tmp_path / "export" / "refiner.onnx"
    assert export_main(["--run-dir", str(run_dir), "--out", str(out)]) == 0
    engine = Engine(out, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    assert engine.hint_channels == 4 and engine.describe()["kernel_aware"]["hint"] == LINE
    rgb = np.random.default_rng(4).random((70, 90, 3)).astype(np.float32)
    np.testing.assert_allclose(engine.model_input(rgb)[..., 6:], np.clip(line_hint(rgb)[0], 0, 1), atol=1e-6)
    assert engine.deblur(rgb).image.shape == rgb.shape
    other = build_generator(Config.load(None, [*common, "hint=wiener", "mid_blocks=2"]))
    other.save_weights(tmp_path / "other.weights.h5")
    elsewhere = dataclasses.replace(cfg, init_weights=str(tmp_path / "other.weights.h5"))
    with pytest.raises(ValueError, match="not this net's"):  # another shape of net: a clear error, not Keras's
        initialise_generator(build_generator(cfg), elsewhere)


def test_with_a_context_the_streak_is_estimated_on_the_whole_sample_and_the_crop_gets_the_hints(
        make_photo, identity_onnx: Path) -> None:
    from service.engine import Engine
    from service.kernel_aware import estimation_region, hinted_input
    from service.line_kernel import line_kernel
    from training.data.hinted import HintedPairs
    from training.data.synthesis import SyntheticPairs
    photos = [make_photo(np.random.default_rng(i), 160, 160) for i in range(2)]
    source = SyntheticPairs(photos, 96, seed=5, max_blur=15, kernel_weights=(0, 1))
    guide = Engine(identity_onnx, providers=["cpu"], threads=1)
    cut = HintedPairs(source, guide, true_share=0.5, seed=5, hint=LINE, crop=48)
    corners = set()
    for index in range(6):
        blurred, sharp = source(index)
        made, target = cut(index)
        assert made.shape == (48, 48, 7) and target.shape == (48, 48, 3)
        found = [(y, x) for y in range(49) for x in range(49) if np.array_equal(sharp[y:y + 48, x:x + 48], target)]
        assert found, "the target is a window of the sample"
        y, x = found[0]
        np.testing.assert_array_equal(made[..., :3], blurred[y:y + 48, x:x + 48])
        corners.add((y, x))
        streak = line_kernel(blurred[estimation_region(blurred)])  # the whole 96² sample's, not the crop's
        crop = blurred[y:y + 48, x:x + 48]
        expected = hinted_input(crop, lambda w, c=crop: c[w], lambda _r, _g: np.ones((1, 1)), LINE,
                                lambda _r, k=streak: k)
        np.testing.assert_allclose(made[..., 6:], expected[..., 6:], atol=1e-6)
    assert len(corners) > 1  # the crop's position is drawn per sample
    np.testing.assert_array_equal(cut(3)[0], cut(3)[0])  # and fixed by (seed, index)


def test_a_run_with_a_hint_context_trains_on_crops_cut_from_larger_samples(tiny_overrides: list[str],
                                                                           identity_onnx: Path, corrector: Path,
                                                                           tmp_path: Path) -> None:
    from training.config import Config
    from training.trainer import build_data, train
    common = [*tiny_overrides, f"hint_guide={identity_onnx}", f"hint={LINE}", f"hint_corrector={corrector}"]
    cfg = Config.load(None, [*common, "hint_context=96", "steps=2"])
    made, _ = build_data(cfg)
    assert made.sampler.crop == 96 and made.crop == 32
    assert made(0)[0].shape == (32, 32, 7) and made(0)[1].shape == (32, 32, 3)
    assert (train(cfg) / "generator.weights.h5").exists()
    with pytest.raises(Exception, match="hint_context"):  # no 130² photo in the folder: a clear error
        build_data(Config.load(None, [*common, "hint_context=130"]))
    for bad in (["hint_context=16"], ["hint=", "hint_corrector=", "hint_context=96"],
                ["hint=wiener-corrected", "hint_context=96"]):
        with pytest.raises(ValueError, match="hint_context"):
            Config.load(None, [*tiny_overrides, f"hint_guide={identity_onnx}", f"hint={LINE}",
                               f"hint_corrector={corrector}", *bad])
