"""Metric validity on real photos: a video made of frames of one person scores higher against that person than
against every other person, and the report's numbers equal an independent computation.

Every recogniser that runs offline here is used: dlib's ResNet (the facexlib, insightface and CurricularFace
weights cannot be downloaded on this machine; their loading code is tested with stand-in files elsewhere). The
photos of ``../shared/data/faces`` are test fixtures only: nothing made from them is stored.
"""
from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from conftest_eval import decode_all, letterbox, strict_json, write_clip
from conftest_faces import FACES_DIR, needs_face_photos
from PIL import Image

from lynx_ext.cli.eval import main as eval_main

pytestmark = needs_face_photos
OFFLINE_RECOGNISERS = ["dlib"]


def identity_photos() -> dict[str, list[str]]:
    with open(FACES_DIR / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["identity"] and not r["file"].startswith(("group_", "partial_"))]
    out: dict[str, list[str]] = {}
    for r in sorted(rows, key=lambda r: r["file"]):
        out.setdefault(r["identity"], []).append(r["file"])
    return out


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    pytest.importorskip("dlib")
    root = tmp_path_factory.mktemp("validity")
    subjects, videos = root / "subjects", root / "videos"
    subjects.mkdir()
    videos.mkdir()
    people = identity_photos()
    for identity, files in people.items():  # the first photo of each person is the subject photo
        shutil.copy(FACES_DIR / files[0], subjects / f"{identity}.jpg")
    rows = []
    for identity, files in people.items():
        if len(files) < 2:
            continue  # a distractor subject only
        frames = [letterbox(Image.open(FACES_DIR / f), 320, 320) for f in files[1:] for _ in range(2)]
        write_clip(videos / f"{identity}.mp4", frames, fps=4)
        rows += [(f"{identity}.mp4", other, "a person looking at the camera") for other in people]
    with open(videos / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([("video", "subject", "prompt"), *rows])
    out = root / "out"
    rc = eval_main(["--videos", str(videos), "--subjects", str(subjects), "--output", str(out), "--detector", "dlib",
                    "--metrics", ",".join(OFFLINE_RECOGNISERS), "--quiet"])
    assert rc == 0
    return {"report": strict_json(out / "report.json"), "videos": videos, "subjects": subjects, "people": people}


@pytest.mark.parametrize("recogniser", OFFLINE_RECOGNISERS)
def test_own_identity_scores_highest(scored, recogniser):
    cases = scored["report"]["cases"]
    by_video: dict[str, dict[str, float]] = {}
    for row in cases:
        assert row["status"] == "ok" and row["frames_with_face"] == row["frames_scored"] > 0
        by_video.setdefault(row["video"], {})[row["subject"]] = row["face_similarity"][recogniser]
    assert len(by_video) == sum(len(f) > 1 for f in scored["people"].values())
    for video, scores in by_video.items():
        own = video.removesuffix(".mp4")
        others = {s: v for s, v in scores.items() if s != own}
        assert len(others) == len(scored["people"]) - 1
        assert scores[own] > max(others.values()), (video, scores)


def test_report_numbers_match_an_independent_computation(scored):
    from lynx_ext.conditioners import FaceAnalyzer, NoFaceError
    from lynx_ext.conditioners.dlib_detector import DlibDetector
    from lynx_ext.conditioners.dlib_resnet import DlibResNetEmbedder

    analyzer = FaceAnalyzer(DlibDetector(), DlibResNetEmbedder())
    report = scored["report"]
    checked = 0
    for video in sorted({r["video"] for r in report["cases"]})[:2]:
        frames = decode_all(scored["videos"] / video)
        picks = np.linspace(0, len(frames) - 1, 32, dtype=int) if len(frames) > 32 else range(len(frames))
        embeddings = []
        for i in picks:
            try:
                embeddings.append(analyzer.analyze(frames[i]).embedding)
            except NoFaceError:
                embeddings.append(None)
        for subject in (video.removesuffix(".mp4"), "lin_manuel_miranda"):
            ref = analyzer.analyze(scored["subjects"] / f"{subject}.jpg").embedding
            per_frame = [None if e is None else float(e @ ref / np.linalg.norm(e) / np.linalg.norm(ref))
                         for e in embeddings]
            found = [v for v in per_frame if v is not None]
            row = next(r for r in report["cases"] if r["video"] == video and r["subject"] == subject)
            assert row["frames_scored"] == len(per_frame) and row["frames_with_face"] == len(found)
            assert row["face_similarity"]["dlib"] == pytest.approx(float(np.mean(found)), abs=1e-5)
            assert row["per_frame"]["dlib"] == pytest.approx(per_frame, abs=1e-5)
            checked += 1
    assert checked == 4
    overall = report["summary"]["overall"]["videos"]["face_similarity/dlib"]
    assert overall["mean"] == pytest.approx(np.mean([r["face_similarity"]["dlib"] for r in report["cases"]]))


def face_crop(file: str) -> Image.Image:
    """A square crop around the (only) face of a single-person photo, twice the face's size."""
    from lynx_ext.conditioners.dlib_detector import DlibDetector

    image = Image.open(FACES_DIR / file).convert("RGB")
    (face,) = DlibDetector().detect(np.asarray(image))
    x0, y0, x1, y1 = face.bbox
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    return image.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))


def side_by_side(big: str, small: str, size: int = 240, small_size: int = 120) -> Image.Image:
    """One frame: the face of photo ``big`` in a ``size`` px square on the left, ``small``'s in a ``small_size``
    one on the right."""
    canvas = Image.new("RGB", (size + small_size + 60, size + 40), (120, 120, 120))
    canvas.paste(face_crop(big).resize((size, size), Image.LANCZOS), (20, 20))
    canvas.paste(face_crop(small).resize((small_size, small_size), Image.LANCZOS),
                 (size + 40, 20 + (size - small_size) // 2))
    return canvas


def test_the_largest_face_is_scored_in_frames_and_subject_photos(tmp_path):
    """Frames and subject photos with two faces of different sizes: the larger face is the one scored."""
    pytest.importorskip("dlib")
    from lynx_ext.evaluation.cases import Case
    from lynx_ext.evaluation.definition import ScoringSettings
    from lynx_ext.evaluation.scorer import Scorer

    scorer = Scorer(ScoringSettings(detector="dlib", metrics=["dlib"], frames=None)).load()
    photos = {"obama": "obama_2.jpg", "biden": "biden_2.jpg"}
    side_by_side("biden_1.jpg", "obama_1.jpg").save(tmp_path / "pair.png")  # big biden, small obama
    subjects = {}
    for name, path in [*((n, FACES_DIR / f) for n, f in photos.items()), ("pair", tmp_path / "pair.png")]:
        subjects[name], info = scorer.subject(name, path)
        assert info["status"] == "ok"
    assert subjects["pair"].num_faces == 2
    videos = {"big_obama": [side_by_side("obama_3.jpg", "biden_1.jpg")] * 2,  # a big and a small face per frame
              "big_biden": [side_by_side("biden_1.jpg", "obama_3.jpg")] * 2,
              "obama": [letterbox(Image.open(FACES_DIR / "obama_3.jpg"), 320, 320)] * 2}
    score = {}
    for video, frames in videos.items():
        path = write_clip(tmp_path / f"{video}.mp4", frames, fps=4)
        for subject in subjects.values():
            case = Case(arm="a", subject=subject.name, prompt_id="p01", prompt="x", video=path.name)
            row = scorer.score(case, path, subject, path.name)
            assert row["faces_per_frame"] == ([1, 1] if video == "obama" else [2, 2])
            score[video, subject.name] = row["face_similarity"]["dlib"]
    # a frame is scored on its big face: the big face's person, not the small face's, matches
    assert score["big_obama", "obama"] > score["big_obama", "biden"] + 0.1
    assert score["big_biden", "biden"] > score["big_biden", "obama"] + 0.1
    # the two-face subject photo is its big face (biden): it matches biden's frames, not obama's
    assert score["big_biden", "pair"] > score["obama", "pair"] + 0.1
    assert score["obama", "obama"] > score["obama", "pair"] + 0.1
