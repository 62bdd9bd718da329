"""What the offline (tiny) preset shows is true: real offline face models (dlib) by default, stand-ins only where
dlib is missing or insightface is asked for without a folder, and a stand-in's output always labelled as such,
never a metric. "Larger than noise" also needs a difference of a stated minimum size."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lynx_ext.cli.generate import main as generate
from lynx_ext.inference import tiny_preset
from lynx_ext.inference.tiny_preset import TinyFaceStack, tiny_face_stack

pytestmark = pytest.mark.usefixtures("use_module_home")
FAST = ["--preset", "tiny", "--num-inference-steps", "1", "--num-frames", "1", "--height", "32", "--width", "32",
        "--quiet"]


# --------------------------------------------------------------------------------------------- the face stack
def test_tiny_face_stack_prefers_real_dlib_and_says_why_it_falls_back(monkeypatch, tmp_path):
    pytest.importorskip("dlib")
    assert tiny_preset.dlib_available()
    assert tiny_face_stack() == TinyFaceStack("dlib", "dlib", False)  # the default: real offline models
    assert tiny_face_stack("dlib") == TinyFaceStack("dlib", "dlib", False)
    assert tiny_face_stack("facexlib", str(tmp_path)) == TinyFaceStack("facexlib", "insightface", False)  # the user's
    asked = tiny_face_stack("insightface")
    assert asked.standin and "asked for without --face-models" in asked.note
    monkeypatch.setattr(tiny_preset, "dlib_available", lambda: False)
    missing = tiny_face_stack()
    assert missing.standin and missing.embedder == "insightface" and "pip install dlib-bin" in missing.note


def test_tiny_adapters_take_the_embedders_size():
    """The random adapters' resampler is built for the embedder: 128-d with dlib, 512-d with the stand-in pack."""
    pytest.importorskip("dlib")
    gen = tiny_preset.tiny_generator("lite")
    assert gen.face.embedder.dim == 128 and gen.pipe.lynx.config.resampler.embedding_dim == 128
    standin = tiny_preset.tiny_generator("lite", embedder="insightface")
    assert standin.pipe.lynx.config.resampler.embedding_dim == 512
    assert any("stand-in" in note for note in standin.notes)


def test_default_tiny_detector_finds_the_face_and_nothing_in_noise():
    pytest.importorskip("dlib")
    from skimage import data

    from lynx_ext.conditioners import NoFaceError

    face = tiny_preset.tiny_generator("lite").face
    found = face.analyze(data.astronaut())
    x1, y1, x2, y2 = found.bbox
    assert 150 < (x1 + x2) / 2 < 300 and 60 < (y1 + y2) / 2 < 190  # the astronaut's face (512-px photo)
    assert not found.standin and "dlib HOG margin" in found.score_scale
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    with pytest.raises(NoFaceError):
        face.analyze(noise)


# --------------------------------------------------------------------------------------------- generate's summary
def test_generate_summary_never_prints_a_standin_similarity(astronaut_png, tmp_path, capsys):
    out = tmp_path / "standin.mp4"
    assert generate(["--image", str(astronaut_png), "--prompt", "an astronaut", "--embedder", "insightface",
                     "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "mean face similarity" not in printed and "face similarity not measured" in printed
    assert "note: stand-in face models" in printed
    report = json.loads((tmp_path / "standin_report.json").read_text())
    assert report["face"]["standin"] is True and report["face"]["detector"].startswith("stand-in detector")
    assert report["face_similarity"]["mean"] is None and "stand-ins" in report["face_similarity"]["not_measured"]
    assert "per_frame" not in report["face_similarity"]


def test_generate_summary_names_the_real_embedder(astronaut_png, tmp_path, capsys, monkeypatch):
    """With real models a measured similarity is printed with the recogniser that measured it."""
    pytest.importorskip("dlib")
    from lynx_ext.conditioners import similarity

    monkeypatch.setattr(similarity, "frame_similarities", lambda analyzer, frames, ref: [0.5] * len(frames))
    out = tmp_path / "real.mp4"
    assert generate(["--image", str(astronaut_png), "--prompt", "an astronaut", "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "mean face similarity 0.500 (dlib-resnet-v1)" in printed and "stand-in" not in printed


# --------------------------------------------------------------------------------------------- larger than noise
def test_larger_than_noise_needs_the_minimum_effect():
    from lynx_ext.evaluation.stats import MIN_EFFECT, paired_difference

    base = {f"c{i}": 0.5 + 0.001 * i for i in range(20)}
    tiny = {k: v + 0.0004 for k, v in base.items()}  # a real but negligible difference: a tight interval above 0
    row = paired_difference(base, tiny)
    assert row["ci_low"] > 0 and row["min_effect"] == MIN_EFFECT == 0.01 and row["exceeds_noise"] is False
    big = {k: v + 0.05 for k, v in base.items()}
    assert paired_difference(base, big)["exceeds_noise"] is True
    assert paired_difference(base, tiny, min_effect=0.0)["exceeds_noise"] is True  # the interval alone
    noisy = {k: v + (0.05 if i % 2 else -0.05) for i, (k, v) in enumerate(base.items())}
    assert paired_difference(base, noisy)["exceeds_noise"] is False  # large swings both ways: the interval has 0


def test_definition_checks_min_effect(tmp_path):
    from lynx_ext.evaluation import load_definition
    from lynx_ext.evaluation.strict_fields import DefinitionError

    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nprompts: [a]\nmodel: {preset: tiny}\nscoring: {min_effect: -0.1}\n")
    with pytest.raises(DefinitionError, match="scoring.min_effect must be a number >= 0"):
        load_definition(path)
