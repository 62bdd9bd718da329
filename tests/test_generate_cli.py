"""``diffsynth-ext generate --extension lynx``: image file in, mp4 + contact sheet + report out, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lynx_ext.cli.generate import main as generate

SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))  # the console script of this environment


pytestmark = pytest.mark.usefixtures("use_module_home")


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


FAST = ["--preset", "tiny", "--num-inference-steps", "2", "--num-frames", "5", "--height", "64", "--width", "64",
        "--quiet"]


def test_cli_end_to_end(face_png, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    rc = generate(["--image", str(face_png), "--prompt", "an astronaut smiling", "--output", str(out), "--webp", *FAST])
    assert rc == 0, capsys.readouterr()
    assert out.stat().st_size > 0 and (tmp_path / "clip.webp").is_file()
    sheet = Image.open(tmp_path / "clip_frames.png")
    assert sheet.width > 64
    report = json.loads((tmp_path / "clip_report.json").read_text())
    assert report["variant"] == "full" and report["settings"]["num_frames"] == 5
    assert report["settings"]["cfg_scale_i"] == 2.0 and report["settings"]["sampler"] == "unipc"
    assert report["face"]["num_faces"] >= 1 and len(report["face_similarity"]["per_frame"]) == 5
    # the tiny preset's offline default: dlib's real detector and 128-d embedder (installed with the README's set-up)
    assert report["face"]["detector"] == "dlib-hog-68" and report["face"]["embedding_dim"] == 128
    assert report["face"]["standin"] is False
    assert {"face_analysis_s", "conditioning_s", "denoising_s", "decode_s"} <= set(report["timings"])
    assert report["models"]["files"] and all("sha256" in f for f in report["models"]["files"])
    import imageio

    assert len(imageio.mimread(str(out))) == 5


def test_console_script_and_batch_mode(face_png, tmp_path, module_home):
    prompts = tmp_path / "prompt.txt"
    prompts.write_text("an astronaut waving\n")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"- {{image: {face_png}, prompt: {prompts}, seed: 1}}\n- {{image: {face_png}, prompt: hello, seed: 2}}\n")
    env = dict(__import__("os").environ, LYNX_EXT_HOME=str(module_home))
    proc = subprocess.run([SCRIPT, "generate", "--extension", "lynx", "--batch", str(jobs), "--output-dir",
                           str(tmp_path / "out"), "--variant", "lite", *FAST], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    videos = sorted((tmp_path / "out").glob("*.mp4"))
    assert [v.name for v in videos] == ["astronaut_000.mp4", "astronaut_001.mp4"]
    report = json.loads((tmp_path / "out" / "astronaut_000_report.json").read_text())
    assert report["prompt"] == "an astronaut waving" and report["settings"]["seed"] == 1
    assert report["variant"] == "lite" and report["settings"]["cfg_scale_i"] is None


def _err(capsys):
    return capsys.readouterr().err


def test_existing_output_is_not_overwritten(face_png, tmp_path, capsys):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"precious")
    rc = generate(["--image", str(face_png), "--prompt", "x", "--output", str(out), *FAST])
    assert rc == 2 and "already exists" in _err(capsys) and out.read_bytes() == b"precious"
    assert not (tmp_path / "keep_report.json").exists()
    assert generate(["--image", str(face_png), "--prompt", "x", "--output", str(out), "--overwrite", *FAST]) == 0
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("case", ["empty_prompt_file", "missing_prompt_file", "missing_image", "corrupt_image",
                                  "unsupported_file", "no_args", "bad_blocks"])
def test_bad_input_gives_clear_error(case, face_png, tmp_path, capsys):
    args = {"image": str(face_png), "prompt": "x"}
    if case == "empty_prompt_file":
        (tmp_path / "p.txt").write_text("  \n")
        args["prompt"], expect = str(tmp_path / "p.txt"), "is empty"
    elif case == "missing_prompt_file":
        args["prompt"], expect = str(tmp_path / "nope.txt"), "does not exist"
    elif case == "missing_image":
        args["image"], expect = str(tmp_path / "nope.jpg"), "does not exist"
    elif case == "corrupt_image":
        (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
        args["image"], expect = str(tmp_path / "bad.jpg"), "bad.jpg"
    elif case == "unsupported_file":
        (tmp_path / "face.txt").write_text("hello")
        args["image"], expect = str(tmp_path / "face.txt"), "face.txt"
    elif case == "bad_blocks":
        expect = "--blocks"
    cli = [] if case == "no_args" else ["--image", args["image"], "--prompt", args["prompt"]]
    if case == "no_args":
        expect = "Give --image and --prompt"
    if case == "bad_blocks":
        cli += ["--blocks", "zero-ten"]
    rc = generate(cli + ["--output", str(tmp_path / "o.mp4"), *FAST])
    assert rc != 0
    assert expect in _err(capsys)
    assert not (tmp_path / "o.mp4").exists()


def test_no_face_and_several_faces(face_png, tmp_path, capsys):
    from lynx_ext.tiny.face_models import (ASTRONAUT_FACE, build_standin_detector, scaled_face,
                                                      write_standin_pack)

    none = write_standin_pack(tmp_path / "none")
    build_standin_detector(none / "det_10g.onnx", [])
    rc = generate(["--image", str(face_png), "--prompt", "x", "--face-models", str(none), "--embedder", "insightface",
                   "--output", str(tmp_path / "a.mp4"), *FAST])
    assert rc == 2 and "face" in _err(capsys).lower() and not (tmp_path / "a.mp4").exists()
    multi = write_standin_pack(tmp_path / "multi")
    build_standin_detector(multi / "det_10g.onnx", [scaled_face(ASTRONAUT_FACE, 0.4, (-150, 0)), ASTRONAUT_FACE])
    rc = generate(["--image", str(face_png), "--prompt", "x", "--face-models", str(multi), "--embedder", "insightface",
                   "--output", str(tmp_path / "b.mp4"), *FAST])
    out = capsys.readouterr().out
    assert rc == 0 and "largest" in out
    report = json.loads((tmp_path / "b_report.json").read_text())
    assert report["face"]["num_faces"] == 2


def test_sizes_are_rounded_with_a_warning(face_png, tmp_path):
    args = ["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "r.mp4"), *FAST]
    args[args.index("--num-frames") + 1] = "6"
    args[args.index("--height") + 1] = "70"
    with pytest.warns(UserWarning, match="num_frames=6 is not of the form 4n\\+1; using 9"):
        assert generate(args) == 0
    report = json.loads((tmp_path / "r_report.json").read_text())
    assert report["settings"]["height"] == 80 and report["settings"]["num_frames"] == 9


def test_missing_face_models_and_wrong_variant_checkpoint(face_png, tmp_path, capsys):
    rc = generate(["--image", str(face_png), "--prompt", "x", "--face-models", str(tmp_path / "nothing"),
                   "--embedder", "insightface", "--output", str(tmp_path / "m.mp4"), *FAST])
    err = _err(capsys)
    assert rc != 0 and "det_10g.onnx" in err


def test_lite_checkpoint_refused_by_full_pipeline(tiny_pipe, tmp_path):
    from conftest import random_adapters

    from lynx_ext.adapters import LynxCheckpointError, save_official_folder
    from lynx_ext.inference.generator import LynxGenerator

    folder = save_official_folder(random_adapters(tiny_pipe.dit, variant="lite"), tmp_path / "lynx_lite")
    with pytest.raises(LynxCheckpointError, match="variant 'full'"):
        LynxGenerator.assemble(tiny_pipe, "full", str(folder), [], object(), [])


def test_reference_latent_is_reproducible_from_the_seed(tiny_pipe):
    from lynx_ext.conditioners.vae_sample import sample_reference_latent

    img = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    a = sample_reference_latent(tiny_pipe.vae, img, 43, "cpu", torch.float32)
    b = sample_reference_latent(tiny_pipe.vae, img, 43, "cpu", torch.float32)
    c = sample_reference_latent(tiny_pipe.vae, img, 44, "cpu", torch.float32)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == (1, 16, 1, 8, 8)
    # A sample of the posterior, not its mean: the mean is what DiffSynth's encode returns.
    mean = tiny_pipe.vae.encode([torch.from_numpy(np.asarray(img, np.float32) / 127.5 - 1).permute(2, 0, 1)[:, None]],
                                device="cpu")
    assert not torch.allclose(a, mean)
    grey = sample_reference_latent(tiny_pipe.vae, img, 43, "cpu", torch.float32, drop=True)
    grey2 = sample_reference_latent(tiny_pipe.vae, Image.new("RGB", (64, 64)), 43, "cpu", torch.float32, drop=True)
    assert torch.equal(grey, grey2)  # the dropped image is grey whatever the face


def test_step_window_and_block_selection(tiny_pipe):
    from conftest import GEN, random_adapters

    from lynx_ext.pipeline import install, installation

    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    seen = []
    inst = installation(tiny_pipe)
    host = inst.host_model_fn

    def spy(**kw):  # what the branches see during each denoising forward (not the t=0 reference pass)
        if float(kw["timestep"].flatten()[0]) != 0:
            seen.append((inst.handle.inputs.active, inst.handle.inputs.blocks))
        return host(**kw)

    inst.host_model_fn = spy
    emb = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    kw = dict(GEN, num_inference_steps=4, lynx_id_embeds=emb, cfg_scale=1.0)
    base = tiny_pipe(**kw, lynx_id_scale=0.0, lynx_ref_scale=0.0)
    tiny_pipe(**kw, lynx_step_window=(0.0, 0.5), lynx_blocks=[0, 2])
    assert [a for a, _ in seen[-4:]] == [True, True, False, False]
    assert seen[-1][1] == frozenset({0, 2})
    assert torch.equal(tiny_pipe(**kw, lynx_step_window=(1.0, 1.0)), base)  # an empty window = adapters off
    # A block selection that excludes every adapted block is the base model too.
    assert torch.equal(tiny_pipe(**kw, lynx_blocks=[]), base)
    assert not torch.equal(tiny_pipe(**kw, lynx_blocks=[1]), base)


def test_pipe_takes_a_face_image_through_the_units(tiny_pipe, face_png, tmp_path):
    from conftest import GEN, random_adapters

    from lynx_ext.conditioners import FaceAnalyzer
    from lynx_ext.tiny.face_models import write_standin_pack
    from lynx_ext.pipeline import install

    base = tiny_pipe(**GEN)
    face = FaceAnalyzer.from_options(models=str(write_standin_pack(tmp_path / "faces")), embedder="insightface",
                                     providers=["CPUExecutionProvider"], offline_ok=True)
    install(tiny_pipe, random_adapters(tiny_pipe.dit), face_analyzer=face)
    out = tiny_pipe(**GEN, lynx_id_image=Image.open(face_png), cfg_scale_i=2.0)
    assert out.shape == base.shape and (out - base).abs().max() > 1e-3
    install_free = tiny_pipe(**GEN)
    assert torch.equal(install_free, base)


def test_lora_takes_path_colon_alpha_as_the_app_does(face_png, tmp_path, capsys):
    """``--lora PATH:ALPHA`` (documented, and what the app's LoRA lines take): the file check applies to PATH, the
    alpha reaches the fuse; a missing PATH is named without the alpha."""
    from safetensors.torch import save_file

    lora = tmp_path / "dit_lora.safetensors"
    g = torch.Generator().manual_seed(1)
    save_file({f"blocks.0.self_attn.q.lora_{ab}.weight": torch.randn(*shape, generator=g) * 0.1
               for ab, shape in (("A", (4, 96)), ("B", (96, 4)))}, str(lora))
    out = tmp_path / "lora.mp4"
    rc = generate(["--image", str(face_png), "--prompt", "x", "--lora", f"{lora}:0.5", "--output", str(out), *FAST])
    assert rc == 0, _err(capsys)
    report = json.loads((tmp_path / "lora_report.json").read_text())
    assert report["models"]["loras"] == [{"path": str(lora), "alpha": 0.5}]
    missing = tmp_path / "nope.safetensors"
    rc = generate(["--image", str(face_png), "--prompt", "x", "--lora", f"{missing}:0.5", "--output",
                   str(tmp_path / "m.mp4"), *FAST])
    err = _err(capsys)
    assert rc == 2 and f"{missing} does not exist" in err and ":0.5" not in err


def test_default_output_names_hold_the_model_and_the_seed(face_png, tmp_path, capsys):
    """Without --output: ``<image>_lynx_<variant>_<preset>_s<seed>.mp4`` (docs/inference.md), the default seed
    included, so a run with another model or seed does not stop at an earlier run's video."""
    from lynx_ext.outputs import default_video_name

    assert default_video_name(face_png, "full", "wan2.1-t2v-14b", 42) != default_video_name(face_png, "full", "tiny", 42)
    out = tmp_path / "out"
    for seed in ([], ["--seed", "7"]):
        assert generate(["--image", str(face_png), "--prompt", "x", "--output-dir", str(out), *seed, *FAST]) == 0, \
            _err(capsys)
    assert sorted(p.name for p in out.glob("*.mp4")) == ["astronaut_lynx_full_tiny_s42.mp4",
                                                          "astronaut_lynx_full_tiny_s7.mp4"]


@pytest.mark.parametrize("bad, flag", [
    (["--cfg-scale", "1", "--cfg-scale-i", "2"], "--cfg-scale-i 2 (identity guidance) needs --cfg-scale > 1"),
    (["--cfg-scale", "0.5", "--cfg-scale-i", "3"], "--cfg-scale-i 3 (identity guidance) needs --cfg-scale > 1"),
    (["--num-inference-steps", "0"], "--num-inference-steps"),
    (["--step-window", "0.6", "0.2"], "--step-window"),
    (["--id-scale", "-1"], "--id-scale"),
    (["--sigma-shift", "0"], "--sigma-shift"),
    (["--step-cache", "0"], "--step-cache"),
])
def test_errors_name_the_flags_as_typed(bad, flag, face_png, tmp_path, capsys):
    """A bad value, or a rule between two settings, is refused before any model loads, naming the flags the user
    typed (``--cfg-scale-i``), never the Python names behind them (``cfg_scale_i``)."""
    from lynx_ext.pipeline.generation_settings import GenerationSettings

    rc = generate(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), *FAST, *bad])
    err = _err(capsys)
    assert rc == 2 and flag in err, err
    assert "Loading" not in err and not (tmp_path / "o.mp4").exists()
    python_names = [n for n in GenerationSettings.field_names() if "_" in n and n in err.replace("--", "  ")]
    assert not python_names, err


def test_guidance_off_is_off_for_identity_too():
    """``--cfg-scale 1`` (docs/speed.md: guidance off, one branch per step) leaves the variant's default identity
    guidance off instead of refusing it; an identity guidance asked for explicitly is refused (above)."""
    from lynx_ext.models.presets import variant_defaults
    from lynx_ext.pipeline.generation_settings import GenerationSettings

    full = variant_defaults("full")
    assert GenerationSettings(cfg_scale=1).resolved(full).cfg_scale_i is None
    assert GenerationSettings().resolved(full).cfg_scale_i == 2.0
    assert GenerationSettings(cfg_scale=3).resolved(full).cfg_scale_i == 2.0
