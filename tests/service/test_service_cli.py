"""The `deblur` command: files, folders, globs, output naming, metadata, progress, failures, exit codes.

Everything runs for real on a tiny ONNX model (see conftest.py); one test runs the installed console
script in a subprocess, the rest call `main()` in process to stay fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageCms
from service_helpers import encoded, photo, png_bytes

from service.app import create_app
from service.cli import main
from service.engine import Engine
from service.settings import Settings

TILES = ["--tile", "32", "--overlap", "8", "--batch", "3", "--threads", "1"]


@pytest.fixture
def opts(small_model: Path) -> list[str]:
    return ["--model", str(small_model), "--provider", "cpu", *TILES, "-q"]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_recursive_to_output_folder_then_skip_then_overwrite(tmp_path, opts, capsys):
    src = tmp_path / "in"
    write(src / "a.png", png_bytes(photo(70, 40)))
    write(src / "sub" / "b.jpg", encoded(photo(30, 20), "JPEG"))
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), *opts]) == 0  # without -r: top level only
    assert sorted(p.name for p in out.rglob("*")) == ["a.png"]
    assert main([str(src), "-r", "-o", str(out), *opts]) == 0
    assert Image.open(out / "a.png").size == (70, 40)
    assert Image.open(out / "sub" / "b.jpg").format == "JPEG"
    err = capsys.readouterr().err
    assert "deblurred 1 image " in err and "1 skipped (outputs exist; use --overwrite)" in err
    assert f"skipped {src / 'a.png'}: {out / 'a.png'} exists" in err
    assert main([str(src), "-r", "-o", str(out), "--overwrite", *opts]) == 0
    assert "deblurred 2 images" in capsys.readouterr().err


def test_default_names_sit_beside_the_input_and_are_not_taken_as_inputs_again(tmp_path, opts, capsys):
    write(tmp_path / "shots" / "a.jpg", encoded(photo(20, 10), "JPEG"))
    assert main([str(tmp_path / "shots"), *opts]) == 0
    assert Image.open(tmp_path / "shots" / "a-deblurred.jpg").format == "JPEG"
    capsys.readouterr()
    assert main([str(tmp_path / "shots"), *opts]) == 0  # a-deblurred.jpg is ours, not a new input
    assert "deblurred 0 images" in capsys.readouterr().err
    assert not (tmp_path / "shots" / "a-deblurred-deblurred.jpg").exists()


def test_output_file_extension_picks_the_format_and_conflicts_are_usage_errors(tmp_path, opts, capsys):
    src = write(tmp_path / "x.png", png_bytes(photo(20, 10)))
    assert main([str(src), "-o", str(tmp_path / "one.jpg"), *opts]) == 0
    assert Image.open(tmp_path / "one.jpg").format == "JPEG"
    assert main([str(src), "-o", str(tmp_path / "two.webp"), "--format", "webp", "--quality", "50", *opts]) == 0
    assert Image.open(tmp_path / "two.webp").format == "WEBP"
    assert main([str(src), "-o", str(tmp_path / "three.png"), "--format", "jpg", *opts]) == 2
    assert "asks for png but --format is jpeg" in capsys.readouterr().err
    write(tmp_path / "y.png", png_bytes(photo(20, 10)))
    assert main([str(tmp_path / "*.png"), "-o", str(tmp_path / "four.png"), *opts]) == 2
    assert "is a file name but there are 2 inputs" in capsys.readouterr().err
    assert main([str(src), "-o", str(src), *opts]) == 1
    assert "would replace the input" in capsys.readouterr().err


def test_quoted_globs_expand_here_and_mirror_below_their_fixed_part(tmp_path, opts):
    write(tmp_path / "shoot" / "day1" / "a.png", png_bytes(photo(20, 10)))
    write(tmp_path / "shoot" / "day2" / "a.png", png_bytes(photo(20, 10, seed=1)))
    write(tmp_path / "shoot" / "day2" / "b.bmp", encoded(photo(12, 9), "BMP"))
    out = tmp_path / "out"
    assert main([str(tmp_path / "shoot" / "**" / "*.png"), "-o", str(out), *opts]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["day1/a.png", "day2/a.png"]
    assert main([str(tmp_path / "shoot" / "day?"), "-o", str(tmp_path / "o2"), *opts]) == 0  # globbed folders
    assert Image.open(tmp_path / "o2" / "day2" / "b.png").size == (12, 9)  # BMP in → PNG out


def test_same_engine_and_bytes_as_the_api(tmp_path, small_model, opts):
    """Identical options → byte-identical output to POST /deblur (same tiling, encoder, metadata)."""
    data = encoded(photo(90, 70), "JPEG", quality=90)
    src = write(tmp_path / "p.jpg", data)
    assert main([str(src), *opts]) == 0
    eng = Engine(small_model, providers=["cpu"], tile_size=32, tile_overlap=8, tile_batch=3, threads=1)
    with TestClient(create_app(Settings(), eng)) as client:
        r = client.post("/deblur", files={"file": ("p.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and int(r.headers["x-tiles"]) > 1
    assert (tmp_path / "p-deblurred.jpg").read_bytes() == r.content


def test_keeps_exif_icc_and_alpha(tmp_path, opts, capsys):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0112] = 6  # rotate 90°: applied to the pixels, tag removed
    write(tmp_path / "cam.jpg", encoded(photo(40, 30), "JPEG", exif=exif.tobytes(), icc_profile=icc))
    rgba = photo(30, 20, mode="RGBA")
    alpha = np.random.default_rng(3).integers(0, 256, (20, 30), dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    write(tmp_path / "logo.png", png_bytes(rgba))
    assert main([str(tmp_path / "cam.jpg"), str(tmp_path / "logo.png"), *opts]) == 0
    cam = Image.open(tmp_path / "cam-deblurred.jpg")
    assert cam.size == (30, 40) and cam.info["icc_profile"] == icc
    assert cam.getexif()[0x010F] == "TestCam" and 0x0112 not in cam.getexif()
    logo = Image.open(tmp_path / "logo-deblurred.png")
    assert logo.mode == "RGBA" and np.array_equal(np.asarray(logo)[..., 3], alpha)
    # JPEG cannot hold alpha: answered as PNG, and the note says so
    assert main([str(tmp_path / "logo.png"), "--format", "jpeg", "-o", str(tmp_path / "o"), *opts]) == 0
    assert Image.open(tmp_path / "o" / "logo.png").mode == "RGBA"
    assert "jpeg cannot store transparency" in capsys.readouterr().err
    assert main([str(tmp_path / "logo.png"), "-o", str(tmp_path / "single.jpg"), *opts]) == 0
    assert Image.open(tmp_path / "single.png").mode == "RGBA" and not (tmp_path / "single.jpg").exists()


def test_failures_one_line_each_the_rest_processed_exit_1(tmp_path, opts, capsys):
    write(tmp_path / "good.png", png_bytes(photo(20, 10)))
    write(tmp_path / "bad.png", png_bytes(photo(64, 64))[:200])
    write(tmp_path / "text.png", b"hello, not a picture")
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / n) for n in ("bad.png", "nope.png", "good.png", "text.png", "empty", "z*.jpg")]
    code = main([*args, *opts])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 1
    failed = [ln for ln in lines if "FAILED" in ln]
    assert len(failed) == 5
    assert any("bad.png: the image data is truncated or corrupt" in ln for ln in failed)
    assert any("nope.png: no such file or folder" in ln for ln in failed)
    assert any("text.png: not a decodable image" in ln for ln in failed)
    assert any("empty: no PNG, JPEG" in ln and "-r" in ln for ln in failed)
    assert any("z*.jpg: the pattern matches no images" in ln for ln in failed)
    assert "deblurred 1 image " in lines[-1] and "5 failed" in lines[-1]
    assert (tmp_path / "good-deblurred.png").exists()


def test_two_inputs_with_one_output_name_do_not_overwrite_each_other(tmp_path, opts, capsys):
    a = write(tmp_path / "a" / "x.png", png_bytes(photo(20, 10)))
    b = write(tmp_path / "b" / "x.png", png_bytes(photo(20, 10, seed=2)))
    assert main([str(a), str(b), "-o", str(tmp_path / "out"), *opts]) == 1
    assert f"{a} is also written to {tmp_path / 'out' / 'x.png'}" in capsys.readouterr().err


def test_progress_bar_counts_all_pixels(tmp_path, small_model, capsys):
    write(tmp_path / "a.png", png_bytes(photo(70, 40)))
    write(tmp_path / "b.png", png_bytes(photo(30, 20)))
    assert main([str(tmp_path), "--model", str(small_model), "--provider", "cpu", *TILES]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "3.40k/3.40k" in err and "px" in err  # 70·40 + 30·20 pixels


def test_settings_from_environment_and_bad_options(tmp_path, small_model, monkeypatch, capsys):
    write(tmp_path / "a.png", png_bytes(photo(20, 10)))
    monkeypatch.setenv("DEBLUR_MODEL_PATH", str(small_model))
    monkeypatch.setenv("DEBLUR_PROVIDERS", "cpu")
    assert main([str(tmp_path / "a.png"), "-q"]) == 0
    assert "on CPUExecutionProvider" in capsys.readouterr().err
    assert main([str(tmp_path / "a.png"), "--provider", "tpu", "-q"]) == 2
    assert "unknown execution providers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "a.png"), "--tile", "4"])
    assert exc.value.code == 2 and "--tile must be at least 16" in capsys.readouterr().err
    monkeypatch.setenv("DEBLUR_MAX_SIDE", "16")  # the API's limits apply here too
    assert main([str(tmp_path / "a.png"), "--overwrite", "-q"]) == 1
    assert "the longest side allowed is 16 px" in capsys.readouterr().err
    monkeypatch.setenv("DEBLUR_TILE_BATCH", "lots")
    assert main([str(tmp_path / "a.png")]) == 2
    assert "invalid DEBLUR_* settings" in capsys.readouterr().err


def test_missing_model_is_exit_2(tmp_path, capsys):
    assert main([str(tmp_path), "--model", str(tmp_path / "none.onnx"), "--provider", "cpu"]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_interrupt_prints_the_summary_and_exits_130(tmp_path, opts, monkeypatch, capsys):
    write(tmp_path / "a.png", png_bytes(photo(20, 10)))

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("service.pipeline.process_bytes", interrupted)
    assert main([str(tmp_path / "a.png"), *opts]) == 130
    assert "deblurred 0 images" in capsys.readouterr().err


def test_console_script_in_a_subprocess(tmp_path, small_model):
    write(tmp_path / "a.png", png_bytes(photo(20, 10)))
    script = Path(sys.executable).with_name("deblur")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEBLUR_")}
    pattern = str(tmp_path / "*.png")  # passed literally, as a quoted glob would be
    done = subprocess.run(
        [*cmd, pattern, "--model", str(small_model), "--provider", "cpu", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "deblurred 1 image " in done.stderr
    assert Image.open(tmp_path / "a-deblurred.png").size == (20, 10)
