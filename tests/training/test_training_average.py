"""`deblur-average`: the mean of several weight files of one net, each scored on the run's validation crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_the_mean_of_two_nets_is_written_and_every_file_is_scored(tiny_overrides: list[str], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    from training.average import main
    from training.config import Config
    from training.nets import build_generator
    cfg = Config.load(None, tiny_overrides)
    config = tmp_path / "config.json"
    config.write_text(cfg.to_json())
    net, rng = build_generator(cfg), np.random.default_rng(3)
    files, arrays = [tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"], []
    for path in files:
        values = [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in net.weights]
        net.set_weights(values)
        net.save_weights(path)
        arrays.append(values)
    out = tmp_path / "soup" / "generator.weights.h5"
    assert main(["--config", str(config), "--weights", *map(str, files), "--out", str(out)]) == 0
    net.load_weights(out)
    for got, a, b in zip(net.get_weights(), *arrays, strict=True):
        np.testing.assert_allclose(got, (a + b) / 2, atol=1e-7)
    assert Config.load(str(out.parent / "config.json"), []) == cfg  # export and `make score` take the folder
    table = capsys.readouterr().out.splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == [f"| {files[0]}", f"| {files[1]}", "| mean of 2"]
    psnrs = [float(row.split(" | ")[1]) for row in table[2:]]
    assert all(np.isfinite(psnrs)) and len(set(psnrs)) == 3


def test_files_of_another_net_or_a_single_file_are_refused(tiny_overrides: list[str], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from training.average import main
    from training.config import Config
    from training.nets import build_generator
    cfg = Config.load(None, tiny_overrides)
    config = tmp_path / "config.json"
    config.write_text(cfg.to_json())
    small, wide = tmp_path / "small.weights.h5", tmp_path / "wide.weights.h5"
    build_generator(cfg).save_weights(small)
    build_generator(Config.load(None, [*tiny_overrides, "mid_blocks=2"])).save_weights(wide)
    out = str(tmp_path / "out.weights.h5")
    assert main(["--config", str(config), "--weights", str(small), str(wide), "--out", out]) == 2
    assert "only weights of one net can be averaged" in capsys.readouterr().err
    assert main(["--config", str(config), "--weights", str(small), "--out", out]) == 2
    assert "two or more" in capsys.readouterr().err
    assert main(["--config", str(config), "--weights", str(small), str(tmp_path / "none.h5"), "--out", out]) == 2
    assert "no weights file" in capsys.readouterr().err
    renamed = tmp_path / "small.h5"
    renamed.write_bytes(small.read_bytes())
    assert main(["--config", str(config), "--weights", str(small), str(renamed), "--out", out]) == 2
    assert "*.weights.h5" in capsys.readouterr().err
    assert not Path(out).exists()
