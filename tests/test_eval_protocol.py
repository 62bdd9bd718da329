"""The protocol on the tiny preset through the CLI: 2 subjects x 2 prompts x 2 arms -> HTML / Markdown / JSON with
the side-by-side table; a run killed after its first finished case resumes, shards merge, and the report is the
same as an uninterrupted run's."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest_eval import ROOT, strict_json
from PIL import Image, ImageOps

from lynx_ext.cli.eval import main as eval_main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("use_module_home")]
RECIPE = ROOT / "recipes" / "eval" / "tiny_cpu.yaml"
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))


@pytest.fixture(scope="module")
def subjects(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("subjects")
    photo = Image.fromarray(data.astronaut())
    photo.save(folder / "astronaut.png")
    ImageOps.mirror(photo).rotate(6).save(folder / "astronaut_mirrored.jpg")
    return folder


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, subjects, module_home):
    out = tmp_path_factory.mktemp("protocol") / "out"
    os.environ["LYNX_EXT_HOME"] = str(module_home)
    rc = eval_main(["--config", str(RECIPE), "--subjects", str(subjects), "--output", str(out), "--quiet"])
    assert rc == 0
    return out


def test_protocol_writes_every_report(full_run):
    report = strict_json(full_run / "report.json")
    assert report["mode"] == "benchmark" and report["arms"] == ["id_on", "id_off"]
    assert report["progress"] == {"cases_planned": 8, "cases_finished": 8, "cases_missing": []}
    assert len(report["cases"]) == 8
    for row in report["cases"]:
        assert row["status"] == "ok" and row["frames_scored"] == 5 and row["frames_with_face"] == 5
        assert (full_run / row["video"]).is_file() and row["video"].endswith(".mp4")
        assert set(row["face_similarity"]) == {"insightface", "dlib"}  # the stand-in pack and dlib run here
        assert all(isinstance(v, float) for v in row["face_similarity"].values())
        assert row["generation"]["settings"]["id_scale"] == (0.0 if row["arm"] == "id_off" else 1.0)
        assert row["generation"]["settings"]["num_frames"] == 5
    unavailable = {u["name"]: u["reason"] for u in report["recognisers"]["unavailable"]}
    assert "recognition_arcface_ir_se50.pth" in unavailable["facexlib"]
    assert "glint360k_curricular_face_r101_backbone.bin" in unavailable["curricularface"]
    # the summary is the mean of the case rows
    for arm in report["arms"]:
        values = [r["face_similarity"]["dlib"] for r in report["cases"] if r["arm"] == arm]
        overall = report["summary"]["overall"][arm]["face_similarity/dlib"]
        assert overall["mean"] == pytest.approx(np.mean(values)) and overall["n"] == 4
        assert overall["ci_low"] <= overall["mean"] <= overall["ci_high"]
        assert set(report["summary"]["per_subject"][arm]) == {"astronaut", "astronaut_mirrored"}
        assert set(report["summary"]["per_prompt"][arm]) == {"park_walk", "city_smile"}
    assets = report["assets"]
    assert len(assets["case_plots"]) == 8 and set(assets["contact_sheets"]) == {"id_on", "id_off"}
    for path in [*assets["case_plots"].values(), *assets["profiles"].values(), *assets["contact_sheets"].values()]:
        assert (full_run / path).stat().st_size > 0
    markdown = (full_run / "report.md").read_text()
    assert "## Side by side (means)" in markdown and "## Difference to the baseline arm (id_on)" in markdown
    assert "| id_off | face_similarity/dlib (stand-in) | 4 |" in markdown
    html = (full_run / "report.html").read_text()
    assert 'data-table="side_by_side"' in html and html.count('class="plot"') >= 2


def test_standin_scores_are_labelled_never_metrics(full_run):
    """The recipe scores with the stand-in pack: every output says so, and no stand-in number is reported as a
    published score or an effect."""
    report = strict_json(full_run / "report.json")
    faces = [c for c in report["summary"]["columns"] if c.startswith(("face_similarity/", "temporal_consistency/"))]
    assert report["standin"]["detector"] is True and sorted(report["standin"]["columns"]) == sorted(faces)
    assert report["scoring"]["detector"].startswith("stand-in detector")
    insightface = next(m for m in report["recognisers"]["available"] if m["name"] == "insightface")
    assert insightface["standin"] is True and "paper" not in insightface["description"]
    assert insightface["model"].startswith("stand-in recognizer")
    for row in report["comparison"]["rows"]:
        assert row["standin"] is True and row["exceeds_noise"] is None
    for name in ("report.md", "report.html"):
        text = (full_run / name).read_text()
        assert "Stand-in models: not metrics." in text and "the paper's insightface score" not in text
        assert "n/a: stand-in" in text and ">yes<" not in text and "| yes |" not in text
        assert "face_similarity/insightface (stand-in)" in text
        assert "excludes 0 and the difference is at least 0.01" in text


def test_side_by_side_pairs_every_case(full_run):
    report = strict_json(full_run / "report.json")
    rows = {r["metric"]: r for r in report["comparison"]["rows"] if r["arm"] == "id_off"}
    dlib = rows["face_similarity/dlib"]
    on, off = ({(r["subject"], r["prompt_id"]): r["face_similarity"]["dlib"]
                for r in report["cases"] if r["arm"] == arm} for arm in ("id_on", "id_off"))
    assert dlib["n_pairs"] == 4
    assert dlib["difference"] == pytest.approx(np.mean([off[k] - on[k] for k in on]))
    assert dlib["min_effect"] == 0.01 and dlib["ci_low"] <= dlib["difference"] <= dlib["ci_high"]
    assert dlib["exceeds_noise"] is None and dlib["standin"] is True  # scored on the stand-in detector's boxes


def comparable(report: dict) -> list:
    keys = ("case_id", "status", "frames_scored", "frames_with_face", "frame_indices", "face_similarity",
            "temporal_consistency", "per_frame")
    return [{k: r[k] for k in keys} for r in report["cases"]]


def test_kill_resume_and_shards_give_the_same_report(full_run, subjects, tmp_path, module_home):
    data = yaml.safe_load(RECIPE.read_text())
    data["arms"] = data["arms"][:1]  # the id_on arm alone: 4 cases, compared with the full run's id_on cases
    recipe = tmp_path / "one_arm.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "killed"
    argv = [SCRIPT, "eval", "--extension", "lynx", "--config", str(recipe), "--subjects", str(subjects),
            "--output", str(out), "--quiet"]
    proc = subprocess.Popen(argv, env={**os.environ, "LYNX_EXT_HOME": str(module_home)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = out / "results"
    deadline = time.time() + 400
    while time.time() < deadline and not (results.is_dir() and any(results.glob("*.json"))):
        assert proc.poll() is None, "the run ended before its first case was written"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert 1 <= len(first) < 4
    assert not list(results.glob(".*.tmp*"))  # atomic writes: no half-written result remains
    # finish in two shards, then merge
    for shard in ("1/2", "2/2"):
        assert eval_main(["--config", str(recipe), "--subjects", str(subjects), "--output", str(out), "--shard", shard,
                          "--quiet"]) == 0
    assert {p.name: p.read_bytes() for p in results.glob("*.json") if p.name in first} == first  # skipped, untouched
    assert eval_main(["--config", str(recipe), "--output", str(out), "--report-only"]) == 0
    resumed = strict_json(out / "report.json")
    reference = strict_json(full_run / "report.json")
    reference["cases"] = [r for r in reference["cases"] if r["arm"] == "id_on"]
    assert resumed["progress"]["cases_finished"] == 4 and len(resumed["cases"]) == 4
    for a, b in zip(comparable(resumed), comparable(reference)):
        assert a["case_id"] == b["case_id"] and a["status"] == b["status"] and a["frame_indices"] == b["frame_indices"]
        for name in ("face_similarity", "temporal_consistency"):
            assert a[name] == pytest.approx(b[name], abs=1e-4)
    overall = resumed["summary"]["overall"]["id_on"]["face_similarity/dlib"]
    assert overall["mean"] == pytest.approx(reference["summary"]["overall"]["id_on"]["face_similarity/dlib"]["mean"],
                                            abs=1e-4)


def test_changed_definition_is_refused_not_mixed(full_run, subjects, tmp_path, capsys):
    data = yaml.safe_load(RECIPE.read_text())
    data["generation"]["num_inference_steps"] = 3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    assert eval_main(["--config", str(changed), "--subjects", str(subjects), "--output", str(full_run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds a result" in err and "made with other settings" in err
