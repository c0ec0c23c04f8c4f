"""The browser page at GET /, driven in real headless Chromium against the real server.

Needs Debian's `chromium` and `chromium-driver` (`make test` installs them when it runs as root); without
them the test is skipped with the reason, except under CI=true, where a missing browser is a failure.
Screenshots (desktop, mobile width, dark scheme, error) are saved in the test's tmp dir for a human to look at.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from service_helpers import photo, png_bytes
from service_server import running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MISSING = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
if MISSING and os.environ.get("CI"):
    pytest.fail(f"browser test needs {MISSING}: apt-get install -y chromium chromium-driver", pytrace=False)
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{MISSING} not installed (apt-get install -y chromium chromium-driver, or make test as root)"
)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1100,1000",
]


@pytest.fixture(scope="module")
def base_url(small_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`deblur-serve` on a free 127.0.0.1 port with the tiny model (upload limit 1 MiB)."""
    with running(small_model, tmp_path_factory.mktemp("browser-server")) as server:
        yield server.base


@pytest.fixture
def browser(tmp_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def choose(driver, path: Path) -> None:
    driver.find_element(By.ID, "file").send_keys(str(path))


def test_upload_compare_download_and_errors(browser, base_url, tmp_path):
    src = tmp_path / "street photo.png"
    src.write_bytes(png_bytes(photo(150, 90)))
    browser.get(base_url + "/")
    model = wait_for(browser, lambda d: "t1" in d.find_element(By.ID, "model").text and d.find_element(By.ID, "model"))
    assert model.text == "Model: tiny-test t1 · CPUExecutionProvider · untrained test model"

    choose(browser, src)
    wait_for(browser, lambda d: d.find_element(By.ID, "result").is_displayed() or "error" in status(d))
    assert status(browser).startswith("Done."), status(browser)
    size = browser.execute_script(
        "const i = document.getElementById('after'); return [i.naturalWidth, i.naturalHeight];"
    )
    assert size == [150, 90]
    assert browser.execute_script("return document.getElementById('before').naturalWidth") == 150
    details = browser.find_element(By.ID, "details").text
    assert details.startswith("150×90 · ") and "CPUExecutionProvider" in details
    browser.save_screenshot(str(tmp_path / "desktop.png"))

    # the download link carries the server's file name and the exact bytes it answered
    link = browser.find_element(By.ID, "download")
    assert link.get_attribute("download") == "street_photo-deblurred.png"
    assert link.text == "Download street_photo-deblurred.png"
    fetched = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
        "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });",
        link.get_attribute("href"),
    )
    result = Image.open(io.BytesIO(base64.b64decode(fetched)))
    assert (result.format, result.size) == ("PNG", (150, 90))

    # the divider moves with the keyboard and says where it is
    slider = browser.find_element(By.ID, "slider")
    slider.send_keys(Keys.ARROW_LEFT * 10)
    compare_pos = "return getComputedStyle(document.getElementById('compare')).getPropertyValue('--pos').trim()"
    assert browser.execute_script(compare_pos) == "40%"
    assert slider.get_attribute("aria-valuetext") == "40% original"
    assert browser.switch_to.active_element == slider

    # narrow phone width: nothing sticks out sideways
    browser.set_window_size(390, 844)
    overflow = "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert browser.execute_script(overflow) <= 0
    browser.save_screenshot(str(tmp_path / "mobile.png"))

    # dark colour scheme is honoured
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    assert browser.execute_script("return getComputedStyle(document.body).backgroundColor") != light
    browser.set_window_size(1100, 1000)
    browser.save_screenshot(str(tmp_path / "dark.png"))

    # a text file: the API's 415 detail, readable, and the old result is gone
    text = tmp_path / "notes.txt"
    text.write_text("definitely not a photo")
    choose(browser, text)
    wait_for(browser, lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
    assert status(browser) == (
        "Not a supported image (415): not a decodable image; supported formats: PNG, JPEG, WebP, BMP, TIFF"
    )
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.save_screenshot(str(tmp_path / "error.png"))


def test_too_large_upload_is_explained(browser, base_url, tmp_path):
    """Over DEBLUR_MAX_UPLOAD_MB (1 MiB here): the page explains instead of hanging or going blank."""
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(Image.fromarray(noise)))
    assert big.stat().st_size > 1024 * 1024
    browser.get(base_url + "/")
    choose(browser, big)
    wait_for(browser, lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class"))
    text = status(browser)
    # Chromium reads the early 413 here; a browser that sees the connection close mid-upload says so instead
    assert text.startswith(("Too large (413): request body is larger than the 1 MiB limit", "Upload failed")), text
