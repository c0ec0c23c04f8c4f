"""The direct NCHW ONNX graph of the NAF U-Net: same numbers as TensorFlow, no layout churn inside."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from training.config import Config
from training.export import check_parity, export_generator, to_onnx
from training.export import main as export_main
from training.nets import build_generator
from training.nets.nafunet import is_nafunet
from training.nets.nafunet_onnx import nafunet_to_onnx

TINY = ["width=8", "enc_blocks=[2,1]", "mid_blocks=2", "dec_blocks=[1,2]", "kernel_sizes=[3,5,7]"]


def _randomised(overrides: list[str]) -> keras.Model:
    g = build_generator(Config.load(None, overrides))
    rng = np.random.default_rng(5)
    for w in g.weights:  # LayerNorm affine, LayerScale and biases all non-trivial, so every fold is exercised
        w.assign(rng.normal(0, 0.15, w.shape).astype("float32"))
    return g


@pytest.fixture(scope="module")
def generator() -> keras.Model:
    return _randomised(TINY)


def test_direct_graph_matches_tensorflow_on_odd_sizes(generator: keras.Model) -> None:
    model = nafunet_to_onnx(generator)
    onnx.checker.check_model(model, full_check=True)
    assert check_parity(lambda x: generator(x).numpy(), model, tolerance=1e-4) < 1e-4
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((3, 33, 50, 3), dtype=np.float32)
    got = session.run(["sharp"], {"blurry": x})[0]
    assert got.shape == x.shape
    np.testing.assert_allclose(got, generator(x).numpy(), atol=1e-4)


def test_direct_graph_is_nchw_inside_and_folds_every_affine(generator: keras.Model) -> None:
    ops = collections.Counter(n.op_type for n in nafunet_to_onnx(generator).graph.node)
    blocks = 2 + 1 + 2 + 1 + 2  # enc (2, 1), mid 2, dec (1, 2)
    assert ops["Transpose"] == 2  # the 3-channel input and output only
    assert ops["Split"] == 0 and ops["Reshape"] == 0
    assert ops["ReduceMean"] == 4 * blocks  # mean and variance of two LayerNorms per block
    assert ops["Mul"] == 4 * blocks  # two squared deviations and two SimpleGate products: no affine Mul left
    assert ops["Add"] == 4 * blocks + 2 + 1  # 2 eps + 2 residuals per block, 2 skips, the output residual


def test_export_uses_the_direct_graph_and_tf2onnx_on_request(generator: keras.Model, tmp_path: Path) -> None:
    assert is_nafunet(generator)
    direct = tmp_path / "direct.onnx"
    export_generator(generator, direct, {"name": "t", "version": "1"})
    assert onnx.load(direct).producer_name == "deblur-export"
    assert to_onnx(generator, direct=False).producer_name == "tf2onnx"


def test_export_cli_tf2onnx_flag(generator: keras.Model, tmp_path: Path, capsys) -> None:
    (tmp_path / "config.json").write_text(Config.load(None, TINY).to_json())
    generator.save_weights(tmp_path / "generator.weights.h5")
    out = tmp_path / "m.onnx"
    assert export_main(["--run-dir", str(tmp_path), "--out", str(out), "--tf2onnx"]) == 0
    assert onnx.load(out).producer_name == "tf2onnx"
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert "kernels=[3, 5, 7]" in meta["architecture"]
    assert "parity max abs error" in capsys.readouterr().out


def test_other_generators_are_not_taken_for_the_nafunet() -> None:
    resnet = build_generator(Config.load(None, ["generator=resnet", "width=8"]))
    assert not is_nafunet(resnet)


def test_a_hinted_net_exports_with_its_guide_and_the_service_serves_it(identity_onnx: Path, tmp_path: Path,
                                                                      capsys) -> None:
    from service.engine import Engine
    hinted = _randomised([*TINY, "hint=wiener"])
    model = nafunet_to_onnx(hinted)
    assert model.graph.input[0].type.tensor_type.shape.dim[3].dim_value == 6
    assert check_parity(lambda x: hinted(x).numpy(), model, tolerance=1e-4) < 1e-4
    run = tmp_path / "run"
    run.mkdir()
    guide = Path(shutil.copyfile(identity_onnx, tmp_path / "guide.onnx"))
    (run / "config.json").write_text(Config.load(None, [*TINY, "hint=wiener", f"hint_guide={guide}"]).to_json())
    hinted.save_weights(run / "generator.weights.h5")
    out = tmp_path / "served" / "refiner.onnx"
    assert export_main(["--run-dir", str(run), "--out", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta["hint"] == "wiener" and meta["hint_guide"] == "guide.onnx" and (out.parent / "guide.onnx").is_file()
    engine = Engine(out, providers=["cpu"], tile_size=64, tile_overlap=16, threads=1)
    rgb = np.random.default_rng(2).random((40, 52, 3)).astype(np.float32)
    assert engine.deblur(rgb).image.shape == rgb.shape and engine.guide.info.name == "identity"
    capsys.readouterr()
    assert export_main(["--run-dir", str(run), "--out", str(out.parent / "guide.onnx")]) == 2
    assert "would be overwritten" in capsys.readouterr().err
    assert export_main(["--run-dir", str(run), "--out", str(out), "--guide", str(tmp_path / "none.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
