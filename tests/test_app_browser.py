"""``diffsynth-ext app --extension lynx`` in a real headless browser (Debian's chromium + Selenium).

The app runs as a subprocess on a free loopback port with the offline tiny preset. The test uploads the astronaut,
checks the face preview, refuses a bad setting with a message, runs two jobs from two tabs (the second waits in
the queue and shows its place), and finds the video element, the report and the files on disk.

With ``LYNX_EXT_SCREENSHOTS=DIR`` set, it also saves the screenshots used in docs/app.md into DIR.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver "
                                       "(apt-get install -y chromium chromium-driver)")
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))
SHOTS = os.environ.get("LYNX_EXT_SCREENSHOTS")
FAST = {"num-inference-steps": "2", "height": "64", "width": "64", "num-frames": "5"}
# The labelled real photos live in ``shared/`` beside the checkout (tests only, never in docs pictures).
FACES = Path(os.environ.get("LYNX_FACES_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"))
BOX = re.compile(r"box (\d+)x(\d+) px at \((-?\d+), (-?\d+)\)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app on a free loopback port; yields (url, output folder)."""
    root = tmp_path_factory.mktemp("app")
    port = _free_port()
    env = dict(os.environ, LYNX_EXT_HOME=str(root / "home"), GRADIO_ANALYTICS_ENABLED="False")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([SCRIPT, "app", "--extension", "lynx", "--port", str(port), "--output-dir",
                             str(root / "out")], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("the app did not answer within 180 s")
                time.sleep(0.5)
        yield url, root / "out"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=60.0, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=f"timed out waiting for {what}")


def _find(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _open_with_photo(driver, url, photo: Path):
    driver.get(url)
    _wait(driver, lambda d: _find(d, "#face-photo input[type=file]"), what="the upload field")[0].send_keys(str(photo))


def _fill(driver, **values):
    """Type into settings fields as a user does (select all, delete, type), so the page sees every edit."""
    from selenium.webdriver.common.keys import Keys

    for name, value in values.items():
        field = _find(driver, f"#set-{name} input, #set-{name} textarea")[0]
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE)
        field.send_keys(value)


def _shot(driver, name, crop=None):
    """When LYNX_EXT_SCREENSHOTS is set, save the whole page (the window grown to the page's height), or only the
    element ``crop``, as a 256-colour PNG."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    path = Path(SHOTS) / name
    if crop:
        _find(driver, crop)[0].screenshot(str(path))
    else:
        size = driver.get_window_size()
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], height + 140)
        time.sleep(0.5)
        driver.save_screenshot(str(path))
        driver.set_window_size(size["width"], size["height"])
    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def test_upload_preview_bad_setting_queue_and_outputs(app_url, browser, astronaut, tmp_path):
    url, out = app_url
    d = browser
    _open_with_photo(d, url, astronaut)
    info = _wait(d, lambda d: " found" in _find(d, "#face-info")[0].text and _find(d, "#face-info")[0],
                 what="the face preview")
    # the offline default detects with dlib: a real detection whose score names its scale (not insightface's 0-1)
    assert "found" in info.text and "detection score" in info.text and "dlib HOG margin" in info.text
    assert "stand-in" not in info.text.lower() and "dlib-hog-68" in info.text
    for box in ("#face-annotated", "#face-crop-112", "#face-crop-256"):
        _wait(d, lambda d: _find(d, f"{box} img"), what=f"the image in {box}")
    zoom = int(_find(d, "#face-annotated img")[0].get_attribute("naturalWidth"))
    assert 110 < zoom < 512  # zoomed on the face (box 110 px wide) inside the 512-px photo
    _fill(d, prompt="an astronaut smiling at the camera", **FAST)
    _shot(d, "app_preview.png")

    # a bad setting is refused with a sentence before anything is queued
    _fill(d, blocks="99")
    _find(d, "#generate")[0].click()
    toast = _wait(d, lambda d: [t for t in _find(d, "[data-testid=toast-text]") if "blocks 0-3" in t.text],
                  what="the bad-blocks message")[0]
    assert "99 does not exist" in toast.text and "Traceback" not in d.page_source
    _fill(d, blocks="")  # the message stays until a later job succeeds
    _fill(d, **{"num-inference-steps": "12"})  # the first job runs long enough for the second to wait

    # a second tab prepares a job; the first tab starts one; the second tab's job waits in the queue
    first = d.current_window_handle
    d.switch_to.new_window("tab")
    second = d.current_window_handle
    _open_with_photo(d, url, astronaut)
    _wait(d, lambda d: " found" in _find(d, "#face-info")[0].text, what="the preview in the second tab")
    _fill(d, prompt="an astronaut waving", seed="7", **FAST)
    d.switch_to.window(first)
    _find(d, "#generate")[0].click()
    _wait(d, lambda d: "steps" in _find(d, "#video")[0].text, what="the first job's progress bar")
    assert "Job running" in _find(d, "#status")[0].text  # not "queued" once it runs
    d.switch_to.window(second)
    _find(d, "#generate")[0].click()
    _wait(d, lambda d: "queue: 1/1" in _find(d, "#video")[0].text, timeout=20, what="the queue position")
    assert "Job queued" in _find(d, "#status")[0].text
    _shot(d, "app_queued.png", crop="#video")
    _wait(d, lambda d: _find(d, "#video video"), timeout=120, what="the second job's video")
    d.switch_to.window(second)
    d.close()
    d.switch_to.window(first)
    video = _wait(d, lambda d: _find(d, "#video video"), timeout=60, what="the first job's video")[0]
    assert video.get_attribute("src")
    links = [a.get_attribute("href") or "" for a in _find(d, "#files a")]
    assert any(link.endswith("_report.json") for link in links), links
    assert '"variant"' in _find(d, "#report")[0].text or "variant" in _find(d, "#report")[0].text
    status = _find(d, "#status")[0].text
    assert "finished" in status and ".mp4" in status
    _wait(d, lambda d: not [t for t in _find(d, "[data-testid=toast-body]") if "blocks 0-3" in t.text], timeout=10,
          what="the earlier error message to close once a job succeeded")
    _wait(d, lambda d: _find(d, "#history [role=grid]")[0].get_attribute("aria-rowcount") == "3",
          what="both jobs in the finished-jobs table (header + 2 rows)")
    _shot(d, "app_finished.png")

    reports = sorted(out.glob("*_report.json"))
    assert len(reports) == 2 and len(list(out.glob("*.mp4"))) == 2 and len(list(out.glob("*_frames.png"))) == 2
    by_seed = {json.loads(r.read_text())["settings"]["seed"]: json.loads(r.read_text()) for r in reports}
    assert by_seed[42]["settings"]["num_inference_steps"] == 12 and by_seed[42]["prompt"].startswith("an astronaut sm")
    assert by_seed[7]["settings"]["num_inference_steps"] == 2 and by_seed[7]["settings"]["height"] == 64
    assert by_seed[7]["face"]["num_faces"] >= 1 and by_seed[7]["face"]["detector"] == "dlib-hog-68"


def _preview_text(driver, url, photo: Path) -> str:
    """The face-info text after uploading ``photo`` on a fresh page."""
    _open_with_photo(driver, url, photo)
    return _wait(driver, lambda d: (lambda t: t if ("found" in t or "cannot be used" in t) else False)(
        _find(d, "#face-info")[0].text), what=f"the preview of {photo.name}")


def _reference_faces(photo: Path) -> list[tuple[float, float, float, float]]:
    """Face boxes by an independent detector (scikit-image's LBP frontal-face cascade)."""
    from skimage import data
    from skimage.feature import Cascade

    rgb = np.asarray(Image.open(photo).convert("RGB"))
    found = Cascade(data.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=rgb, scale_factor=1.1, step_ratio=1, min_size=(40, 40), max_size=(500, 500))
    return [(f["c"], f["r"], f["c"] + f["width"], f["r"] + f["height"]) for f in found]


def _iou(a, b) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.skipif(not FACES.is_dir(), reason=f"the labelled photos are not at {FACES}")
def test_preview_box_is_on_the_face_and_noise_has_none(app_url, browser, tmp_path):
    """The offline preset's preview detects for real: on each labelled photo its box is where an independent
    detector finds the face (a stand-in would put the same box on every photo), and noise has no face."""
    pytest.importorskip("dlib")
    url, _ = app_url
    photos = sorted(p for p in FACES.glob("*.jpg") if not p.name.startswith(("group_", "partial_")))
    assert len(photos) == 15
    boxes, checked = {}, 0
    for photo in photos:
        text = _preview_text(browser, url, photo)
        assert "1 face found" in text and "stand-in" not in text.lower(), (photo.name, text)
        match = BOX.search(text)
        assert match, text
        w, h, x, y = (float(v) for v in match.groups())
        box = (x, y, x + w, y + h)
        boxes[photo.name] = box
        width, height = Image.open(photo).size
        assert 0 <= x and 0 <= y and x + w <= width + 1 and y + h <= height + 1 and w >= 40, (photo.name, box)
        reference = _reference_faces(photo)
        if reference:
            checked += 1
            assert max(_iou(box, r) for r in reference) > 0.5, (photo.name, box, reference)
    assert checked >= 13  # the reference detector misses at most a couple of these faces
    assert len(set(boxes.values())) == len(boxes)  # a box per photo, not one fixed box
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(noise)
    text = _preview_text(browser, url, noise)
    assert "This photo cannot be used: No face found in noise.png" in text, text
    assert "/tmp" not in text and "gradio" not in text.lower()  # the user's file name, not the server's copy
    assert not _find(browser, "#face-annotated img")
