"""`deblur --server URL`: the same outputs as a local run (byte for byte), progress bars, 503 retried after
Retry-After, API keys, and clear exits for a bad server, bad options and bad inputs."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fault_models import heavy_model
from jobs_client import submit, wait_status, wait_tiles
from PIL import Image
from service_helpers import encoded, photo, png_bytes
from service_server import running
from test_service_e2e import free_port

from service.cli import main

KEY = "cli-key-0123456789"
DELETED = r'"DELETE /jobs/[\w-]{22} HTTP/1.1" 204'


@pytest.fixture(scope="module")
def server(small_model, tmp_path_factory):
    with running(small_model, tmp_path_factory.mktemp("cli-server"), DEBLUR_API_KEYS=KEY) as server:
        yield server


def inputs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(photo(150, 90)))
    (folder / "sub").mkdir()
    (folder / "sub" / "b.jpg").write_bytes(encoded(photo(70, 40, seed=1), "JPEG"))
    (folder / "alpha.png").write_bytes(png_bytes(photo(40, 30, seed=2).convert("RGBA")))
    return folder


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra", [[], ["--format", "jpeg", "--quality", "80"]], ids=["as-input", "jpeg-80"])
def test_outputs_are_byte_identical_to_a_local_run(server, small_model, tmp_path, capsys, extra):
    src = inputs(tmp_path / "in")
    local = ["--model", str(small_model), "--provider", "cpu", "--tile", "64", "--overlap", "16", "--threads", "1"]
    assert main([str(src), "-r", "-o", str(tmp_path / "local"), "-q", *local, *extra]) == 0
    deleted = len(re.findall(DELETED, server.log()))
    remote = ["--server", server.base, "--api-key", KEY]
    assert main([str(src), "-r", "-o", str(tmp_path / "remote"), *remote, *extra]) == 0
    err = capsys.readouterr().err
    want, got = tree(tmp_path / "local"), tree(tmp_path / "remote")
    assert len(want) == 3 and got == want
    assert "deblurred 3 images (0.0 MP) in" in err and f"on {server.base} (CPUExecutionProvider)" in err
    assert "100%" in err and "px/s" in err  # the progress bar, measured in pixels
    if extra:  # alpha cannot be JPEG: the same note as a local run
        assert err.count("jpeg cannot store transparency; answered png") == 2
    assert len(re.findall(DELETED, server.log())) == deleted + 3  # the server keeps nothing once saved


def test_a_busy_server_is_retried_after_retry_after(models_dir, tmp_path, capsys):
    model = heavy_model(models_dir / "heavy-cli.onnx", channels=64, layers=10)
    env = {"DEBLUR_TILE_BATCH": "1", "DEBLUR_MAX_UPLOAD_MB": "4", "DEBLUR_JOB_MAX_QUEUED": "1"}
    with running(model, tmp_path / "srv", **env) as busy, httpx.Client(base_url=busy.base, timeout=30) as c:
        first = submit(c, png_bytes(photo(400, 300))).json()["id"]
        wait_tiles(c, first, at_least=1)
        second = submit(c, png_bytes(photo(300, 200))).json()["id"]  # the one queue place is taken
        assert submit(c, png_bytes(photo(8, 8))).status_code == 503
        (tmp_path / "x.png").write_bytes(png_bytes(photo(64, 48)))
        assert main([str(tmp_path / "x.png"), "--server", busy.base, "-q"]) == 0
        assert Image.open(tmp_path / "x-deblurred.png").size == (64, 48)
        refused = len(re.findall(r'"POST /jobs HTTP/1.1" 503', busy.log()))
        assert refused >= 2  # ours above, and at least one of the command's, which it waited out
        for job in (first, second):
            assert wait_status(c, job)["status"] == "done"
    assert "deblurred 1 image" in capsys.readouterr().err


def test_keys_unreachable_servers_and_engine_options_exit_2_with_one_line(server, small_model, tmp_path, capsys,
                                                                           monkeypatch):
    (tmp_path / "a.png").write_bytes(png_bytes(photo(20, 10)))
    a = str(tmp_path / "a.png")
    assert main([a, "--server", server.base]) == 2
    assert "needs an API key: --api-key KEY or DEBLUR_API_KEY" in capsys.readouterr().err
    assert main([a, "--server", server.base, "--api-key", "wrong"]) == 2
    assert "invalid API key (401)" in capsys.readouterr().err
    assert main([a, "--server", f"http://127.0.0.1:{free_port()}"]) == 2
    assert "cannot reach http://127.0.0.1:" in capsys.readouterr().err
    assert main([a, "--server", server.base, "--tile", "32", "--api-key", KEY]) == 2
    assert "--tile: with --server the server's own settings apply" in capsys.readouterr().err
    monkeypatch.setenv("DEBLUR_API_KEY", KEY)
    assert main([a, "--server", server.base, "-q"]) == 0
    capsys.readouterr()


def test_a_bad_input_fails_alone_with_the_servers_detail(server, tmp_path, capsys):
    (tmp_path / "fake.png").write_text("not an image")
    (tmp_path / "good.png").write_bytes(png_bytes(photo(20, 10)))
    assert main([str(tmp_path / "fake.png"), str(tmp_path / "good.png"), "--server", server.base, "--api-key", KEY,
                 "-q"]) == 1
    err = capsys.readouterr().err
    detail = "not a decodable image; supported formats: PNG, JPEG, WebP, BMP, TIFF (415)"
    assert f"FAILED {tmp_path / 'fake.png'}: {detail}" in err
    assert (tmp_path / "good-deblurred.png").is_file() and "1 failed" in err
