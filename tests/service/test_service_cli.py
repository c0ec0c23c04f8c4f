"""The `deblur` command, in process: files, folders, globs, outputs, failures and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from service_helpers import encoded, photo, png_bytes

from service.cli import main


@pytest.fixture
def opts(small_model: Path) -> list[str]:
    return ["--model", str(small_model), "--provider", "cpu", "--tile", "64", "--overlap", "16", "-q"]


def test_folder_recursive_to_output_folder(tmp_path, opts, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(png_bytes(photo(70, 40)))
    (src / "sub" / "b.jpg").write_bytes(encoded(photo(30, 20), "JPEG"))
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main([str(src), "-r", "-o", str(out), *opts]) == 0
    assert Image.open(out / "a.png").size == (70, 40)
    assert Image.open(out / "sub" / "b.jpg").format == "JPEG"
    assert "deblurred 2 images" in capsys.readouterr().err
    # second run: outputs exist, skipped unless --overwrite
    assert main([str(src), "-r", "-o", str(out), *opts]) == 0
    assert "2 skipped" in capsys.readouterr().err
    assert main([str(src), "-r", "-o", str(out), "--overwrite", *opts]) == 0
    assert "deblurred 2 images" in capsys.readouterr().err


def test_single_file_glob_and_format(tmp_path, opts):
    (tmp_path / "x1.png").write_bytes(png_bytes(photo(20, 10)))
    (tmp_path / "x2.png").write_bytes(png_bytes(photo(20, 10)))
    assert main([str(tmp_path / "x1.png"), "-o", str(tmp_path / "one.webp"), "--format", "webp", *opts]) == 0
    assert Image.open(tmp_path / "one.webp").format == "WEBP"
    assert main([str(tmp_path / "x*.png"), *opts]) == 0
    assert (tmp_path / "x1-deblurred.png").exists() and (tmp_path / "x2-deblurred.png").exists()


def test_failures_are_listed_and_exit_nonzero(tmp_path, opts, capsys):
    (tmp_path / "good.png").write_bytes(png_bytes(photo(20, 10)))
    (tmp_path / "bad.png").write_bytes(png_bytes(photo(64, 64))[:200])
    code = main([str(tmp_path / "good.png"), str(tmp_path / "bad.png"), str(tmp_path / "nope.png"), *opts])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("FAILED") == 2 and "bad.png" in err and "nope.png" in err
    assert "deblurred 1 image " in err and "2 failed" in err


def test_missing_model_is_exit_2(tmp_path, capsys):
    assert main([str(tmp_path), "--model", str(tmp_path / "none.onnx"), "--provider", "cpu"]) == 2
    assert "model file not found" in capsys.readouterr().err
