"""demo.py in a real headless browser: Debian's chromium driven by selenium, nothing downloaded.

Skipped with a reason where Gradio, selenium or chromium is missing; .ci/run installs them.
Set FKP_DEMO_SCREENSHOT=<file.png|.jpg> to keep the screenshot (the docs' picture, docs/demo.jpg,
is made so).
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("gradio") and importlib.util.find_spec("selenium")
         and CHROMIUM and CHROMEDRIVER),
    reason="needs the demo extra (pip install -e '.[demo]') and Debian's chromium and "
           "chromium-driver (apt-get install chromium chromium-driver)",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    port = _free_port()
    run_dir = tmp_path_factory.mktemp("demo")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "demo.py"), f"port={port}", f"hydra.run.dir={run_dir}",
         f"paths.log_dir={run_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    yield url
    # Ctrl-C, with the browser sessions of this module's tests still connected: stops at once
    start = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - start < 5 and proc.returncode == 0, out[-2000:]
    assert "stopping the demo" in out


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1100", "--disable-gpu"]:  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _upload(browser, url: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    field = WebDriverWait(browser, 60).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, "#photo input[type=file]"))
    )
    field.send_keys(str(path))


def _wait_for(browser, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.25).until(lambda d: condition(d))


def test_upload_a_photo_and_see_two_faces_with_68_points(demo_url, browser, photos):
    from selenium.webdriver.common.by import By

    _upload(browser, demo_url, photos / "obamas.jpg")

    def result(driver):
        text = driver.find_element(By.CSS_SELECTOR, "#json textarea").get_attribute("value")
        return json.loads(text) if text.strip() else None

    faces = _wait_for(browser, result)["faces"]
    assert len(faces) == 2
    assert all(len(face["keypoints"]) == 68 for face in faces)
    timing = browser.find_element(By.ID, "timing").text
    assert "2 faces" in timing and "ms" in timing
    shown = browser.find_element(By.CSS_SELECTOR, "#result img")  # the annotated picture
    assert shown.get_attribute("src")
    # the upload itself, reduced, under its file name
    thumb = _wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#thumbnail img"))
    assert thumb[0].get_attribute("src")


def test_the_sample_photo_that_ships_in_the_repository(demo_url, browser):
    from selenium.webdriver.common.by import By

    _upload(browser, demo_url, ROOT / "docs" / "samples" / "astronaut.jpg")
    timing = _wait_for(browser, lambda d: d.find_element(By.ID, "timing").text or None)
    assert "1 face," in timing
    keep = os.environ.get("FKP_DEMO_SCREENSHOT")  # the docs' picture
    if keep:
        import cv2
        import numpy as np

        time.sleep(1)  # let the image fade in
        png = np.frombuffer(browser.get_screenshot_as_png(), np.uint8)
        cv2.imwrite(keep, cv2.imdecode(png, cv2.IMREAD_COLOR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def _toast(driver) -> str | None:
    from selenium.webdriver.common.by import By

    shown = driver.find_elements(By.CSS_SELECTOR, ".toast-body, [data-testid='toast-body']")
    return " ".join(e.text for e in shown) or None


@pytest.mark.parametrize("kind,expected", [
    ("text", "not an image fkp can read"),
    ("huge", "megapixels), more than the page takes"),
])  # fmt: skip
def test_a_bad_upload_gets_one_sentence_in_the_page(demo_url, browser, tmp_path, kind, expected):
    import cv2
    import numpy as np

    if kind == "text":
        bad = tmp_path / "notes.jpg"
        bad.write_text("these are my notes, not a photo\n")
    else:  # 64 megapixels, a small file: refused from its header, before decoding
        bad = tmp_path / "huge.png"
        cv2.imwrite(str(bad), np.zeros((8000, 8000), np.uint8))
    _upload(browser, demo_url, bad)
    text = _wait_for(browser, _toast, 60)
    assert expected in text and "Traceback" not in text and "preprocess" not in text


def test_a_photo_without_a_face_says_so(demo_url, browser, tmp_path):
    import cv2
    import numpy as np
    from selenium.webdriver.common.by import By

    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 200, np.uint8))
    _upload(browser, demo_url, blank)
    timing = _wait_for(browser, lambda d: d.find_element(By.ID, "timing").text or None)
    assert "0 faces" in timing and "no face found" in timing
