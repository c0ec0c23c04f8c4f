"""The page's jobs flow in headless Chromium against the real server: a determinate bar that moves through
the real tile counts ("tile 37 / 120"), an ETA, Cancel during inference, and the API-key prompt.

The server runs a deliberately heavy model with one tile per model call, so a 600×400 photo takes seconds
and the bar has many steps to be seen at; the test reads the bar's value and max and the status text."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fault_models import heavy_model
from service_helpers import photo, png_bytes
from service_server import running
from test_service_browser import browser, choose, pytestmark, status, wait_for  # noqa: F401  (fixture, skip mark)

from service.tiling import TilePlan

SLOW = {"DEBLUR_TILE_BATCH": "1", "DEBLUR_MAX_UPLOAD_MB": "4"}
KEY = "page-key-0123456789"
SAMPLER = """
window.samples = [];
setInterval(() => {
  const p = document.getElementById('progress');
  window.samples.push([p.value, p.max, p.hidden, document.getElementById('status').textContent, p.dataset.job || '']);
}, 25);
"""


@pytest.fixture(scope="module")
def slow_base(models_dir, tmp_path_factory):
    model = heavy_model(models_dir / "heavy-page.onnx", channels=64, layers=10)
    with running(model, tmp_path_factory.mktemp("page-jobs"), **SLOW) as server:
        yield server.base


def picture(tmp_path: Path, width: int, height: int) -> Path:
    path = tmp_path / f"photo-{width}x{height}.png"
    path.write_bytes(png_bytes(photo(width, height, seed=7)))
    return path


def test_the_bar_moves_through_real_tile_counts_with_an_eta(browser, slow_base, tmp_path):  # noqa: F811
    browser.get(slow_base + "/")
    wait_for(browser, lambda d: "Model: heavy-page" in d.find_element("id", "model").text)
    browser.execute_script(SAMPLER)
    choose(browser, picture(tmp_path, 600, 400))
    wait_for(browser, lambda d: status(d).startswith(("Done.", "Failed", "Lost")) or "error" in
             d.find_element("id", "status").get_attribute("class"), timeout=120)
    assert status(browser).startswith("Done."), status(browser)
    samples = browser.execute_script("return window.samples")
    job = next(s[4] for s in samples if s[4])
    view = httpx.get(f"{slow_base}/jobs/{job}", timeout=10).json()
    total = len(TilePlan(400, 600, 64, 16, 8))
    assert view["progress"]["tiles_total"] == total and view["status"] == "done"
    shown = []
    for value, maximum, hidden, text, _ in samples:
        m = re.match(r"Deblurring… tile (\d+) / (\d+)", text)
        if m and not hidden:
            assert (int(m[1]), int(m[2])) == (value, maximum) == (value, total)
            shown.append(value)
    assert shown == sorted(shown), "the bar went backwards"
    inside = sorted({v for v in shown if 0 < v < total})
    assert len(inside) >= 3, f"too few steps seen: {inside}"
    assert any(re.search(r"· about \d+ s left$", s[3]) for s in samples)
    assert browser.find_element("id", "details").text.startswith("600×400 · ")
    assert f"{total} tiles" in browser.find_element("id", "details").text
    assert not browser.find_element("id", "cancel").is_displayed()


def test_cancel_stops_the_job_on_the_server(browser, slow_base, tmp_path):  # noqa: F811
    browser.get(slow_base + "/")
    wait_for(browser, lambda d: "Model: heavy-page" in d.find_element("id", "model").text)
    choose(browser, picture(tmp_path, 800, 600))
    wait_for(browser, lambda d: (m := re.match(r"Deblurring… tile (\d+)", status(d))) and int(m[1]) >= 3, timeout=60)
    job = browser.find_element("id", "progress").get_attribute("data-job")
    browser.save_screenshot(str(tmp_path / "progress.png"))  # for a human to look at
    browser.find_element("id", "cancel").click()
    wait_for(browser, lambda d: status(d) == "Cancelled.", timeout=30)
    view = httpx.get(f"{slow_base}/jobs/{job}", timeout=10).json()
    assert view["status"] == "cancelled" and view["progress"]["tiles_done"] < view["progress"]["tiles_total"]
    assert not browser.find_element("id", "result").is_displayed()
    assert not browser.find_element("id", "progress").is_displayed()


def test_the_page_asks_for_a_key_when_the_server_wants_one(browser, small_model, tmp_path):  # noqa: F811
    with running(small_model, tmp_path / "server", DEBLUR_API_KEYS=KEY) as server:
        browser.get(server.base + "/")
        form = wait_for(browser, lambda d: d.find_element("id", "keyform").is_displayed() and d.find_element("id",
                                                                                                            "keyform"))
        assert browser.find_element("id", "model").text == "Model: this server needs an API key"
        browser.find_element("id", "apikey").send_keys("not-the-key")
        form.submit()
        wait_for(browser, lambda d: "not accepted" in d.find_element("id", "key-why").text)
        browser.find_element("id", "apikey").send_keys(KEY)
        form.submit()
        wait_for(browser, lambda d: d.find_element("id", "model").text.startswith("Model: tiny-test t1"))
        assert not browser.find_element("id", "keyform").is_displayed()
        choose(browser, picture(tmp_path, 150, 90))
        wait_for(browser, lambda d: d.find_element("id", "result").is_displayed() or "error" in
                 d.find_element("id", "status").get_attribute("class"))
        assert status(browser).startswith("Done."), status(browser)
        assert KEY not in server.log()


def test_a_new_photo_replaces_the_running_job(browser, slow_base, tmp_path):  # noqa: F811
    browser.get(slow_base + "/")
    wait_for(browser, lambda d: "Model: heavy-page" in d.find_element("id", "model").text)
    choose(browser, picture(tmp_path, 800, 600))
    wait_for(browser, lambda d: (m := re.match(r"Deblurring… tile (\d+)", status(d))) and int(m[1]) >= 2, timeout=60)
    first = browser.find_element("id", "progress").get_attribute("data-job")
    choose(browser, picture(tmp_path, 64, 48))
    wait_for(browser, lambda d: d.find_element("id", "result").is_displayed() or "error" in
             d.find_element("id", "status").get_attribute("class"), timeout=60)
    assert status(browser).startswith("Done."), status(browser)  # not overwritten by the first job's cancel
    assert browser.find_element("id", "details").text.startswith("64×48 · ")
    assert httpx.get(f"{slow_base}/jobs/{first}", timeout=10).json()["status"] == "cancelled"
