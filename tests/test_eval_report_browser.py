"""The HTML report in a real headless browser (Debian's chromium through selenium): the page opens from disk and
shows its tables, plots and contact sheets.

Set ``LYNX_EXT_SCREENSHOT=docs/assets/eval_report.png`` to also save a screenshot of the page (how the picture in
docs/evaluation.md was made, then cropped to its top 2480 px, scaled to 75 % and reduced to 256 colours; the videos are
synthetic pans over scikit-image's public-domain astronaut photo, scored with dlib).
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest_eval import pan_clip, strict_json, write_clip
from PIL import Image, ImageFilter, ImageOps

from lynx_ext.cli.eval import main as eval_main

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not "
                                "installed (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    pytest.importorskip("dlib")
    from skimage import data

    root = tmp_path_factory.mktemp("browser")
    subjects, videos = root / "subjects", root / "videos"
    subjects.mkdir()
    videos.mkdir()
    head = Image.fromarray(data.astronaut()[20:330, 120:430])
    head.save(subjects / "astronaut.png")
    ImageOps.mirror(head).save(subjects / "astronaut_mirrored.png")
    rows = []
    for arm, blur in (("system_a", 0.0), ("system_b", 0.7)):  # system_b: a face that blurs away along the clip
        for k, prompt in enumerate(("an astronaut smiling at the camera", "an astronaut turning her head")):
            for subject in ("astronaut", "astronaut_mirrored"):
                photo = np.asarray(head if subject == "astronaut" else ImageOps.mirror(head))
                frames = pan_clip(photo, 8 + 4 * k, (192, 192), drift=2 + k)
                frames = [f.filter(ImageFilter.GaussianBlur(blur * i)) for i, f in enumerate(frames)]
                name = f"{arm}/{subject}_{k}.mp4"
                (videos / arm).mkdir(exist_ok=True)
                write_clip(videos / name, frames, fps=8)
                rows.append((name, subject, prompt, arm))
    write_clip(videos / "system_b" / "coffee.mp4", pan_clip(data.coffee(), 4, (192, 144)), fps=8)
    rows.append(("system_b/coffee.mp4", "astronaut", "a cup of coffee", "system_b"))
    with open(videos / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("video", "subject", "prompt", "arm"), *rows])
    out = root / "report"
    assert eval_main(["--videos", str(videos), "--subjects", str(subjects), "--output", str(out), "--metrics", "dlib",
                      "--detector", "dlib", "--frames", "6", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,900",
                "--allow-file-access-from-files"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_report_page_shows_tables_plots_and_images(report_dir, browser):
    from selenium.webdriver.common.by import By

    report = strict_json(report_dir / "report.json")
    browser.get((report_dir / "report.html").as_uri())
    assert browser.title == "Evaluation report: videos"
    tables = {t.get_attribute("data-table"): t for t in browser.find_elements(By.CSS_SELECTOR, "table.report-table")}
    assert {"overall", "side_by_side", "difference", "counts", "per_subject", "per_prompt", "recognisers", "subjects",
            "cases"} <= set(tables)
    first = tables["overall"].find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")
    arm, column = first[0].text, first[1].text
    assert first[4].text == f"{report['summary']['overall'][arm][column]['mean']:.3f}"
    cases = tables["cases"].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(cases) == len(report["cases"]) == 9
    assert "no_face" in tables["cases"].text
    # real recognisers: no stand-in label; the verdict's rule (interval excludes 0 and a minimum effect) is stated
    assert report["standin"] is None and "stand-in" not in browser.page_source.lower()
    rule = "excludes 0 and the difference is at least 0.01 in size"
    assert rule in browser.find_element(By.CSS_SELECTOR, "#difference + p.note").text
    images = browser.find_elements(By.TAG_NAME, "img")
    plots = [i for i in images if "plot" in i.get_attribute("class")]
    sheets = [i for i in images if "contact-sheet" in i.get_attribute("class")]
    assert len(plots) >= 3 and len(sheets) == 2
    for image in images:  # every picture loaded from beside the page
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image), \
            image.get_attribute("src")
    link = tables["cases"].find_element(By.LINK_TEXT, "plot").get_attribute("href")
    assert link.startswith("file://") and Path(link[len("file://"):]).is_file()
    target = os.environ.get("LYNX_EXT_SCREENSHOT")
    if target:
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1300, min(int(height) + 40, 6000))
        browser.save_screenshot(target)
