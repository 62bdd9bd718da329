"""``diffsynth-ext eval --videos``: scoring a folder of any system's videos, and every bad input of the issue.

Synthetic videos are slow pans over scikit-image's astronaut photo (public domain); faces are found with dlib's
HOG detector and scored with dlib's ResNet (both offline from pip).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_eval import pan_clip, strict_json, write_clip, zero_frame_video
from conftest_faces import FACES_DIR, needs_face_photos
from PIL import Image

from lynx_ext.cli.eval import main as eval_main

pytest.importorskip("dlib")
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))


def brightness_judge(frames, prompt, subject, scale=1.0):
    """A stand-in judge model (the hook's contract): mean brightness of the frames, and a 'not rated' value."""
    return {"brightness": scale * float(np.mean([np.asarray(f).mean() for f in frames])) / 255.0, "realism": None}


def write_manifest(folder: Path, rows, header=("video", "subject", "prompt", "arm")):
    with open(folder / "manifest.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("videos_mode")
    subjects, videos = root / "subjects", root / "videos"
    subjects.mkdir()
    (videos / "sys_b").mkdir(parents=True)
    face = data.astronaut()[20:330, 120:430]  # the astronaut's head (dlib also fires on her suit's patch)
    Image.fromarray(face).save(subjects / "astronaut.png")
    Image.fromarray(data.coffee()).save(subjects / "coffee.png")  # no face: reported and skipped
    if (FACES_DIR / "group_two_people.jpg").is_file():
        shutil.copy(FACES_DIR / "group_two_people.jpg", subjects / "pair.jpg")  # two faces: the largest is used
    write_clip(videos / "small_8fps.mp4", pan_clip(face, 6, (160, 160)), fps=8)
    write_clip(videos / "sys_b" / "wide_24fps.mp4", pan_clip(face, 40, (256, 192), drift=1), fps=24)
    write_clip(videos / "no_face.mp4", pan_clip(data.coffee(), 4, (160, 120)), fps=8)
    zero_frame_video(videos / "zero_frames.mp4")
    (videos / "garbage.mp4").write_bytes(os.urandom(4096))
    rows = [("small_8fps.mp4", "astronaut", "an astronaut smiling", "sys_a"),
            ("sys_b/wide_24fps.mp4", "astronaut", "an astronaut smiling", "sys_b"),
            ("no_face.mp4", "astronaut", "a cup of coffee", "sys_a"),
            ("zero_frames.mp4", "astronaut", "a cup of coffee", "sys_b"),
            ("garbage.mp4", "astronaut", "an astronaut smiling", "sys_a"),
            ("missing.mp4", "astronaut", "a cup of coffee", "sys_a"),
            ("small_8fps.mp4", "coffee", "an astronaut smiling", "sys_a")]
    if (subjects / "pair.jpg").is_file():
        rows.append(("small_8fps.mp4", "pair", "an astronaut smiling", "sys_a"))
    write_manifest(videos, rows)
    return {"root": root, "subjects": subjects, "videos": videos}


def run(folder, out, *extra):
    return eval_main(["--videos", str(folder["videos"]), "--subjects", str(folder["subjects"]), "--output", str(out),
                      "--detector", "dlib", "--frames", "8", "--quiet", *extra])


@pytest.fixture(scope="module")
def scored(folder):
    out = folder["root"] / "out"
    assert run(folder, out, "--metrics", "dlib,judge", "--judge", f"{__name__}:brightness_judge") == 0
    return out


def test_report_rows_and_interface(scored):
    report = strict_json(scored / "report.json")
    assert report["schema"] == "lynx-ext/eval-report/1" and report["mode"] == "videos"
    cases = {(r["video"], r["subject"]): r for r in report["cases"]}
    for row in cases.values():
        assert {"video", "subject", "prompt", "face_similarity", "frames_scored", "frames_with_face"} <= set(row)
        assert set(row["face_similarity"]) == {"dlib"}
    small = cases[("small_8fps.mp4", "astronaut")]
    assert small["status"] == "ok" and small["frames_scored"] == 6 and small["frames_with_face"] == 6
    assert small["video_info"] == {"frames": 6, "fps": 8.0, "width": 160, "height": 160}
    assert small["face_similarity"]["dlib"] > 0.9  # the same photo, panned
    wide = cases[("sys_b/wide_24fps.mp4", "astronaut")]  # other size and frame rate in the same folder
    info = wide["video_info"]
    assert info["fps"] == 24.0 and (info["width"], info["height"]) == (256, 192)
    assert wide["frame_indices"] == [int(i) for i in np.linspace(0, 39, 8, dtype=int)]
    assert wide["frames_scored"] == 8 and wide["face_similarity"]["dlib"] > 0.9
    assert small["metrics"]["judge"]["extras"]["realism"] is None
    assert "judge/brightness" in report["summary"]["columns"]


def test_bad_videos_are_reported_per_case(scored):
    report = strict_json(scored / "report.json")
    cases = {r["video"]: r for r in report["cases"] if r["subject"] == "astronaut"}
    no_face = cases["no_face.mp4"]
    assert no_face["status"] == "no_face" and no_face["frames_with_face"] == 0 and no_face["frames_scored"] == 4
    assert no_face["face_similarity"] == {"dlib": None}
    for name in ("zero_frames.mp4", "garbage.mp4", "missing.mp4"):
        assert cases[name]["status"] == "unreadable" and name in cases[name]["error"]
        assert cases[name]["face_similarity"] == {"dlib": None}
    summary = report["summary"]
    assert summary["no_face_cases"]["sys_a"] == ["sys_a/no_face.mp4/astronaut"]
    assert {f["case_id"] for f in summary["failed_cases"]["sys_a"]} == {"sys_a/garbage.mp4/astronaut",
                                                                       "sys_a/missing.mp4/astronaut"}
    # no-face and unreadable cases are counted, never averaged as zero
    sys_a = summary["overall"]["sys_a"]["face_similarity/dlib"]
    ok = [r["face_similarity"]["dlib"] for r in report["cases"] if r["arm"] == "sys_a" and r["status"] == "ok"]
    assert sys_a["mean"] == pytest.approx(np.mean(ok)) and sys_a["n_missing"] == 3
    assert "no face" in (scored / "report.md").read_text()


def test_subject_photos_without_or_with_several_faces(scored, folder):
    report = strict_json(scored / "report.json")
    skipped = {s["subject"]: s for s in report["subjects_skipped"]}
    assert list(skipped) == ["coffee"] and "no face" in skipped["coffee"]["reason"]
    assert all(r["subject"] != "coffee" for r in report["cases"])
    assert "coffee" in (scored / "report.html").read_text()


@needs_face_photos  # the group photo comes from ../shared
def test_subject_photo_with_two_faces_is_noted(scored):
    pair = next(s for s in strict_json(scored / "report.json")["subjects"] if s["subject"] == "pair")
    assert pair["faces"] == 2 and "the largest was used" in pair["note"]


def test_two_systems_side_by_side(scored):
    report = strict_json(scored / "report.json")
    assert report["arms"] == ["sys_a", "sys_b"] and report["comparison"]["baseline"] == "sys_a"
    html = (scored / "report.html").read_text()
    assert 'data-table="side_by_side"' in html and 'data-table="difference"' in html


def test_rerun_skips_scored_cases(scored, folder, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (scored / "results").glob("*.json")}
    assert run(folder, scored, "--metrics", "dlib,judge", "--judge", f"{__name__}:brightness_judge") == 0
    assert f"{len(before)} already scored, 0 to score" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (scored / "results").glob("*.json")} == before


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_named_recogniser_without_weights_is_an_error(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert run(folder, tmp_path / "o", "--metrics", "dlib,facexlib", "--face-models", str(tmp_path)) == 2
    err = one_line_error(capsys)
    assert "recognition_arcface_ir_se50.pth" in err and "place" in err.lower() and str(tmp_path) in err
    assert run(folder, tmp_path / "o", "--metrics", "curricularface") == 2
    assert "glint360k_curricular_face_r101_backbone.bin" in one_line_error(capsys)
    assert run(folder, tmp_path / "o", "--metrics", "dlib,nosuch") == 2
    assert "Unknown metric 'nosuch'" in one_line_error(capsys)


def test_unavailable_recognisers_are_listed_not_fatal(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.insightface packs
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(folder["videos"] / "small_8fps.mp4", one / "v.mp4")
    write_manifest(one, [("v.mp4", "astronaut", "x")], header=("video", "subject", "prompt"))
    out = tmp_path / "o"
    argv = ["--videos", str(one), "--subjects", str(folder["subjects"]), "--output", str(out), "--quiet"]
    assert eval_main(argv) == 0
    report = strict_json(out / "report.json")
    assert [m["name"] for m in report["recognisers"]["available"]] == ["dlib"]
    unavailable = {u["name"]: u for u in report["recognisers"]["unavailable"]}
    assert set(unavailable) == {"facexlib", "insightface", "curricularface"}
    assert unavailable["insightface"]["file"] == "w600k_r50.onnx"
    assert "dlib" in report["scoring"]["detector"] and "det_10g.onnx" in report["scoring"]["detector_note"]


@pytest.mark.parametrize("rows, header, needle", [
    ([("v.mp4", "astronaut", "x", "extra")], ("video", "subject", "prompt", "notes"), "unknown column 'notes'"),
    ([("v.mp4", "astronaut")], ("video", "subject"), "no column 'prompt'"),
    ([("v.mp4", "nobody", "x")], ("video", "subject", "prompt"), "names subject 'nobody'"),
    ([("v.mp4", "astronaut", "x"), ("./v.mp4", "astronaut", "y")], ("video", "subject", "prompt"), "both score"),
    ([("v.mp4", "astronaut", "")], ("video", "subject", "prompt"), "'prompt' cell is empty"),
    ([("v.mp4", "astronaut", "x", "1.5")], ("video", "subject", "prompt", "seed"), "is not an integer"),
])
def test_bad_manifests(folder, tmp_path, capsys, rows, header, needle):
    write_manifest(tmp_path, rows, header)
    rc = eval_main(["--videos", str(tmp_path), "--subjects", str(folder["subjects"]), "--output",
                    str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and needle in one_line_error(capsys)


def test_console_script_usage_errors(folder, tmp_path):
    proc = subprocess.run([SCRIPT, "eval", "--extension", "lynx", "--videos", str(folder["videos"]), "--output",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --videos needs --subjects DIR and --output DIR."
    proc = subprocess.run([SCRIPT, "eval", "--extension", "lynx", "--videos", str(tmp_path / "none"), "--subjects",
                           str(folder["subjects"]), "--output", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and proc.stderr.count("\n") == 1
