"""The app without a browser: settings checks, the face preview, the generator cache and jobs on the tiny preset."""
from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from lynx_ext.app import JobSettings
from lynx_ext.app.face_preview import (BOX_COLOUR, LANDMARK_COLOURS, NO_PHOTO, ZOOM_MARGIN, face_preview,
                                      preview_panel)
from lynx_ext.cli.app import build_parser, build_runner, resolve_preset
from lynx_ext.conditioners import LynxInputError, NoFaceError


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """The app's runner as ``diffsynth-ext app --extension lynx`` builds it (tiny preset, models loaded once)."""
    root = tmp_path_factory.mktemp("app")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LYNX_EXT_HOME", str(root / "home"))
        args = build_parser().parse_args(["--output-dir", str(root / "out")])
        runner, _, preset = build_runner(args, root / "out")
        assert preset == "tiny"
        yield runner


def fast(**values) -> JobSettings:
    """The form's defaults for the full variant, small and quick, with ``values`` changed."""
    base = JobSettings.defaults("full", prompt="an astronaut smiling", num_inference_steps=2, height=64, width=64,
                                num_frames=5)
    return replace(base, **values)


# ------------------------------------------------------------------------------------------- settings checks
@pytest.mark.parametrize("values, words", [
    (dict(id_scale=float("nan")), ["ID scale", "finite"]),
    (dict(ref_scale=float("inf")), ["Ref scale", "finite"]),
    (dict(cfg_scale=-1.0), ["Text guidance g", "between 0 and 30"]),
    (dict(cfg_scale_i=float("nan")), ["Identity guidance gi", "finite"]),
    (dict(step_window_start=0.8, step_window_end=0.2), ["step window", "reversed", "0.8", "0.2"]),
    (dict(step_window_start=0.5, step_window_end=0.5), ["step window", "empty"]),
    (dict(step_window_end=1.5), ["Step window end", "between 0 and 1"]),
    (dict(step_window_start=float("nan")), ["Step window start"]),
    (dict(num_inference_steps=0), ["Steps", "between 1 and 1000"]),
    (dict(num_inference_steps=2.5), ["Steps", "whole number"]),
    (dict(height=None), ["Height", "must be a number"]),
    (dict(fps=0), ["FPS"]),
    (dict(seed=-1), ["Seed"]),
    (dict(prompt="   "), ["prompt is empty"]),
    (dict(sampler="ddim"), ["Sampler", "unipc, euler", "ddim"]),
    (dict(blocks="0-x"), ["Blocks", "'0-x'", "0-19"]),
    (dict(blocks="5-2"), ["Blocks", "reversed", "2-5"]),
])
def test_bad_settings_are_refused_naming_the_control(values, words):
    with pytest.raises(LynxInputError) as err:
        fast(**values).generate_kwargs(num_blocks=40)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_blocks_are_checked_against_the_model():
    assert fast(blocks="0-2, 5").block_list(num_blocks=6) == [0, 1, 2, 5]
    with pytest.raises(LynxInputError, match="blocks 0-5; 6 does not exist"):
        fast(blocks="0-6").block_list(num_blocks=6)
    assert fast(blocks="all").block_list(6) is None and fast(blocks=" ").block_list(6) is None


@pytest.mark.parametrize("values, words", [
    (dict(variant="medium"), ["Variant", "full, lite", "medium"]),
    (dict(loras="/nowhere/style.safetensors:0.7"), ["LoRA file", "/nowhere/style.safetensors", "does not exist"]),
    (dict(vram_limit=float("nan")), ["VRAM limit", "finite"]),
    (dict(vram_limit=-4), ["VRAM limit", "between"]),
])
def test_bad_model_settings_are_refused(values, words):
    with pytest.raises(LynxInputError) as err:
        fast(**values).model_key()
    assert all(w in str(err.value) for w in words), str(err.value)


def test_good_settings_become_generate_arguments(tmp_path):
    import torch
    from safetensors.torch import save_file

    lora = tmp_path / "style.safetensors"
    save_file({"lora_A.weight": torch.zeros(2, 2)}, str(lora))
    s = fast(step_window_start=0.0, step_window_end=0.6, blocks="0-3", identity_guidance=False, seed=7.0,
             loras=f"\n{lora}:0.5\n", vram_limit=0)
    kwargs = s.generate_kwargs(num_blocks=4)
    assert kwargs["step_window"] == [0.0, 0.6] and kwargs["blocks"] == [0, 1, 2, 3]
    assert kwargs["cfg_scale_i"] is None and kwargs["seed"] == 7 and isinstance(kwargs["seed"], int)
    assert kwargs["num_inference_steps"] == 2 and kwargs["prompt"] == "an astronaut smiling"
    assert fast().generate_kwargs()["step_window"] is None  # the whole range means "no window"
    key = s.model_key()
    assert key.loras == (f"{lora}:0.5",) and key.vram_limit is None and key.variant == "full"
    with pytest.raises(LynxInputError, match="Unknown setting.*colour"):
        JobSettings.from_form({"prompt": "x", "colour": "red"})
    with pytest.raises(LynxInputError, match="Missing setting.*negative_prompt"):
        JobSettings.from_form({"prompt": "x"})
    form = vars(fast())
    assert JobSettings.from_form(form) == fast()


def test_form_defaults_follow_the_variant_and_preset():
    full, lite = JobSettings.defaults("full"), JobSettings.defaults("lite", "tiny")
    assert (full.num_frames, full.fps, full.identity_guidance, full.cfg_scale_i) == (81, 16, True, 2.0)
    assert (lite.num_frames, lite.fps, lite.identity_guidance) == (9, 8, False)  # the tiny preset's sizes
    assert full.negative_prompt.startswith("Bright tones")


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_defaults_and_refusals(tmp_path, capsys):
    args = build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.port is None and not args.share  # loopback unless asked
    assert resolve_preset(args) == "tiny"
    assert resolve_preset(build_parser().parse_args(["--face-models", "x"])) == "wan2.1-t2v-14b"
    assert resolve_preset(build_parser().parse_args(["--face-models", "x", "--preset", "tiny"])) == "tiny"
    afile = tmp_path / "taken"
    afile.write_text("")
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    from lynx_ext.cli.main import run_extension_command
    from lynx_ext.extension import LynxExtension

    for argv, words in ([["--port", "70000"], "--port must be between 1 and 65535"],
                        [["--max-queue", "0"], "--max-queue must be at least 1"],
                        [["--output-dir", str(afile)], "is a file"],
                        [["--port", str(port)], f"Cannot listen on 127.0.0.1:{port}"],
                        [["--lora", str(tmp_path / "missing.safetensors")], "does not exist"],
                        # model options are named as typed (not face_models, nor the form's "VRAM limit (GB)")
                        [["--face-models", str(tmp_path / "no_faces")], "(--face-models) does not exist"],
                        [["--face-models", str(tmp_path), "--vram-limit", "-3"], "--vram-limit must be between"]):
        argv = ["--output-dir", str(tmp_path / "out"), *argv]  # the case's own --output-dir comes last and wins
        assert run_extension_command(LynxExtension(), "app", argv) == 2  # through the registered extension command
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    busy.close()


# ------------------------------------------------------------------------------------------- face preview
def test_face_preview_draws_the_box_and_landmarks(runner, astronaut):
    shown = face_preview(runner.cache.face_analyzer, astronaut)
    face = shown.result
    assert face.num_faces >= 1 and shown.aligned_112.size == (112, 112) and shown.ref_crop.size == (256, 256)
    x1, y1, x2, y2 = face.bbox
    zoom = np.asarray(shown.annotated)
    assert x2 - x1 < zoom.shape[1] < 512  # zoomed around the face, inside the photo
    side = max(x2 - x1, y2 - y1)
    left, top = max(0, int(x1 - ZOOM_MARGIN * side)), max(0, int(y1 - ZOOM_MARGIN * side))
    row = zoom[int((y1 + y2) / 2) - top]
    assert (np.abs(row[int(x1) - left - 2:int(x1) - left + 3].astype(int) - BOX_COLOUR).sum(-1) < 30).any()
    for (x, y), colour in zip(face.kps, LANDMARK_COLOURS):
        assert np.abs(zoom[int(round(y)) - top, int(round(x)) - left].astype(int) - colour).sum() < 30
    # the offline default is dlib's real detector and 128-d embedder; the score says which scale it is on
    assert face.detector == "dlib-hog-68" and not face.standin
    assert "faces found**" in shown.summary or "face found**" in shown.summary
    assert "128-d" in shown.summary and "dlib HOG margin" in shown.summary and "not a 0-1 confidence" in shown.summary
    assert "stand-in" not in shown.summary.lower()


def test_face_preview_without_a_face_names_the_users_file(runner, astronaut, tmp_path):
    analyzer = runner.cache.face_analyzer  # the tiny preset's: dlib's real detector finds no face where none is
    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (128, 128, 120)).save(blank)
    with pytest.raises(NoFaceError, match="No face found in .*wall.png"):
        face_preview(analyzer, blank)
    annotated, small, ref, text = preview_panel(analyzer, str(blank))
    assert annotated is small is ref is None and text.startswith("**This photo cannot be used:** No face found in "
                                                                 "wall.png ")
    assert str(tmp_path) not in text  # the user's file name, not the server's (Gradio's temporary) path
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    text = preview_panel(analyzer, str(noise))[3]
    assert text.startswith("**This photo cannot be used:** No face found in noise.png")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    text = preview_panel(analyzer, str(not_an_image))[3]
    assert "cannot be used" in text and "notes.png" in text and str(tmp_path) not in text
    assert preview_panel(analyzer, None)[3] == NO_PHOTO
    assert "found**" in preview_panel(analyzer, str(astronaut))[3]


def test_face_preview_labels_standin_models(astronaut, tmp_path):
    """With stand-ins (no dlib, or insightface asked for without a folder) the preview never presents the fixed box
    as a detection or its constant as a detection score."""
    from conftest_faces import standin_analyzer

    analyzer = standin_analyzer(tmp_path / "standin")
    text = preview_panel(analyzer, str(astronaut))[3]
    assert text.startswith("**Stand-in face models, not face models**") and "fixed box" in text
    assert "face found" not in text and "not a detection" in text
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(noise)
    assert preview_panel(analyzer, str(noise))[3].startswith("**Stand-in face models")  # it fires on noise too


# ----------------------------------------------------------------------------------------------- jobs
def test_job_writes_video_sheet_report_with_progress(runner, astronaut):
    calls = []
    job = runner.run(str(astronaut), fast(height=70, seed=5), lambda d, t, what: calls.append((d, t, what)))
    assert set(job.paths) == {"video", "contact_sheet", "report"} and all(p.is_file() for p in job.paths.values())
    assert job.paths["video"].parent == runner.output_dir and "astronaut_full_s5" in job.paths["video"].name
    report = json.loads(job.paths["report"].read_text())
    assert report["settings"]["height"] == 80 and report["settings"]["num_inference_steps"] == 2
    assert report["settings"]["seed"] == 5 and report["prompt"] == "an astronaut smiling"
    assert report["negative_prompt"].startswith("Bright tones")
    assert "height 70 is not a multiple of 16; used 80." in job.notes
    steps = [(d, t, what) for d, t, what in calls if t == 2]
    assert steps == [(0, 2, "denoising"), (1, 2, "denoising"), (2, 2, "decoding the video")]  # fed by the loop
    assert calls[0][2].startswith("analysing the face") and calls[-1][2].startswith("writing")
    assert runner.history[-1] is job


def test_output_names_never_reuse_an_existing_file(runner, monkeypatch):
    monkeypatch.setattr("lynx_ext.app.jobs.time.strftime", lambda fmt: "20250101-000000")
    number, first = runner._reserve("/photos/astro naut.png", "full", 1)
    assert first.name == f"20250101-000000_{number:03d}_astro_naut_full_s1.mp4"
    first.with_name(first.stem + "_report.json").write_text("{}")  # e.g. left by an earlier session
    runner._count = number - 1
    again, second = runner._reserve("/photos/astro naut.png", "full", 1)
    assert again == number and second.name == first.stem + "_2.mp4"


def test_job_refusals_name_the_problem(runner, astronaut, tmp_path):
    with pytest.raises(LynxInputError, match="Upload a face photo first"):
        runner.run(None, fast())
    with pytest.raises(LynxInputError, match="ID scale must be a finite number"):
        runner.run(str(astronaut), fast(id_scale=math.nan))
    with pytest.raises(LynxInputError, match="this model has blocks 0-3; 9 does not exist"):
        runner.check(str(astronaut), fast(blocks="2,9"))
    not_an_image = tmp_path / "photo.png"
    not_an_image.write_text("not an image")
    before = len(os.listdir(runner.output_dir))
    with pytest.raises(LynxInputError, match="photo.png"):
        runner.run(str(not_an_image), fast())
    assert len(os.listdir(runner.output_dir)) == before  # nothing written for a refused job


def test_model_changes_reload_and_a_failed_load_keeps_the_app_working(runner, astronaut, tmp_path):
    loads = runner.cache.loads
    lite = runner.run(str(astronaut), fast(variant="lite", identity_guidance=False, face_similarity=False))
    assert runner.cache.key.variant == "lite" and lite.report["variant"] == "lite" and runner.cache.loads == loads + 1
    assert "face_similarity" not in lite.report
    lite_key, lite_gen = runner.cache.key, runner.cache.generator
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(LynxInputError, match="broken.safetensors is not a readable .safetensors file"):
        runner.run(str(astronaut), fast(variant="lite", loras=str(broken)))
    assert runner.cache.generator is lite_gen and runner.cache.loads == loads + 1  # refused before any reload
    foreign = tmp_path / "foreign.pth"  # recognised by content: refused before the reload, never unpickled
    foreign.write_bytes(b"not a checkpoint")
    from lynx_ext.errors import LynxFormatError

    with pytest.raises(LynxFormatError, match="foreign.pth is not a format lynx-ext knows"):
        runner.run(str(astronaut), fast(variant="lite", loras=str(foreign)))
    assert runner.cache.key == lite_key and runner.cache.generator is not None  # the previous models are kept
    assert runner.cache.loads == loads + 1
    restored = runner.cache.generator
    assert restored is not lite_gen and runner.cache.get(lite_key) is restored and runner.cache.loads == loads + 1
