"""Large depthwise kernels per level, and growing trained 3×3 weights into them without changing the output."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from training.config import Config
from training.grow import main as grow_main
from training.nets import build_generator, macs_per_megapixel
from training.nets.grow import grow_weights, pad_kernel

TINY = ["width=8", "enc_blocks=[1,1]", "mid_blocks=1", "dec_blocks=[1,1]"]
LARGE = TINY + ["kernel_sizes=[3,5,7]"]


def _randomised(cfg: list[str], seed: int = 0) -> keras.Model:
    g = build_generator(Config.load(None, cfg))
    rng = np.random.default_rng(seed)
    for w in g.weights:
        w.assign(rng.normal(0, 0.1, w.shape).astype("float32"))
    return g


def _dw_sizes(model: keras.Model) -> dict[str, int]:
    depthwise = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    return {layer.name: layer.kernel_size[0] for layer in depthwise}


def test_kernel_sizes_set_each_levels_depthwise_kernel_and_cost() -> None:
    small, large = build_generator(Config.load(None, TINY)), build_generator(Config.load(None, LARGE))
    sizes = _dw_sizes(large)
    assert sizes == {"enc0_0_dw": 3, "dec0_0_dw": 3, "enc1_0_dw": 5, "dec1_0_dw": 5, "mid_0_dw": 7}
    assert set(_dw_sizes(small).values()) == {3}
    assert macs_per_megapixel(large) > macs_per_megapixel(small)
    x = np.random.default_rng(0).random((1, 45, 29, 3), dtype=np.float32)
    assert large(x).shape == x.shape


@pytest.mark.parametrize("sizes", ["[3,5]", "[3,4,7]", "[3,5,7,9]"])
def test_kernel_sizes_must_be_one_odd_size_per_level(sizes: str) -> None:
    with pytest.raises(ValueError, match="kernel_sizes must be 3 odd sizes"):
        build_generator(Config.load(None, TINY + [f"kernel_sizes={sizes}"]))


def test_grown_model_computes_exactly_what_the_source_did() -> None:
    source = _randomised(TINY)
    target = build_generator(Config.load(None, LARGE))
    grow_weights(source, target)
    x = np.random.default_rng(1).random((2, 64, 40, 3), dtype=np.float32)
    np.testing.assert_allclose(target(x).numpy(), source(x).numpy(), atol=1e-6)
    kernel = target.get_layer("mid_0_dw").get_weights()[0]
    assert kernel.shape[:2] == (7, 7) and not kernel[:2].any() and not kernel[:, -2:].any()


def test_grow_refuses_to_shrink_or_to_change_widths() -> None:
    with pytest.raises(ValueError, match="cannot shrink"):
        grow_weights(_randomised(LARGE), build_generator(Config.load(None, TINY)))
    with pytest.raises(ValueError, match="does not fit"):
        grow_weights(_randomised(TINY), build_generator(Config.load(None, LARGE + ["width=16"])))
    assert pad_kernel(np.ones((3, 3, 2, 1)), (5, 5)).sum() == 18


def test_grow_cli_writes_weights_the_trainer_can_load(tmp_path: Path, capsys) -> None:
    def write(name: str, overrides: list[str]) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(json.loads(Config.load(None, overrides).to_json())))
        return path
    source = _randomised(TINY, seed=2)
    source.save_weights(tmp_path / "small.weights.h5")
    small, large = write("small.json", TINY), write("large.json", LARGE)
    out = tmp_path / "grown.weights.h5"
    assert grow_main(["--from-config", str(small), "--weights", str(tmp_path / "small.weights.h5"),
                      "--to-config", str(large), "--out", str(out)]) == 0
    target = build_generator(Config.load(large))
    target.load_weights(out)
    x = np.random.default_rng(3).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(target(x).numpy(), source(x).numpy(), atol=1e-6)
    assert grow_main(["--from-config", str(large), "--weights", str(out), "--to-config", str(small),
                      "--out", str(tmp_path / "x.weights.h5")]) == 2
    assert "cannot shrink" in capsys.readouterr().err


def test_receptive_field_grows_with_the_kernels_and_scales_are_reported() -> None:
    from training.receptive_field import layer_scales, mass_beyond

    images = np.random.default_rng(4).random((2, 96, 96, 3), dtype=np.float32)
    small = _randomised(TINY, seed=6)
    large = build_generator(Config.load(None, LARGE))
    grow_weights(small, large)
    before = mass_beyond(large, images, radii=(0, 12, 40))
    for layer in large.layers:  # give the grown outer taps weight, as training does
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel + 0.05, bias])
    after = mass_beyond(large, images, radii=(0, 12, 40))
    assert before[0] == pytest.approx(after[0], abs=0.2) and 0.5 < after[0] <= 1.0
    assert after[12] > before[12] and after[40] >= before[40]
    assert set(layer_scales(large)) == {"enc0", "enc1", "mid", "dec1", "dec0"}


def test_receptive_field_cli_on_held_out_photos(photo_dir: Path, tmp_path: Path, capsys) -> None:
    from training.receptive_field import main as rf_main

    config = tmp_path / "c.json"
    config.write_text(Config.load(None, TINY).to_json())
    _randomised(TINY).save_weights(tmp_path / "w.weights.h5")
    args = ["--config", str(config), "--weights", str(tmp_path / "w.weights.h5"), "--size", "48", "--images", "2"]
    assert rf_main(args + ["--photos", str(photo_dir)]) == 0
    out = capsys.readouterr().out
    assert "| gradient mass beyond r |" in out and "mid " in out
    assert rf_main(args + ["--photos", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_receptive_field_names_the_folder_when_every_held_out_photo_is_too_small(tmp_path: Path) -> None:
    from PIL import Image

    from training.data.folders import is_validation
    from training.receptive_field import protocol_crops

    name = next(f"p{i}.png" for i in range(1000) if is_validation(Path(f"p{i}.png"), 0.12))
    Image.new("RGB", (50, 50)).save(tmp_path / name)
    with pytest.raises(ValueError, match=f"at least 320 px under {tmp_path}"):
        protocol_crops(str(tmp_path), 256, 4, val_fraction=0.12)  # the config's, as main passes it
