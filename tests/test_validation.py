"""Every input checked once, early, with our own errors (issue 12), through the CLI and the Python API.

One test per class of the issue, each with several cases: (1) nonsense refused, (2) refused before any model
loads, (3) messages that name the problem, (4) our exception types at the API. Class 5 (promises) is in
`test_validation_promises.py`. Generation cases run against the tiny preset with the model build replaced by a
trap: reaching it fails the test, so each refusal is proven to happen before anything loads.
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from lynx_ext.cli.generate import main as generate
from lynx_ext.errors import (
    DeviceUnavailableError,
    LynxCompatibilityError,
    LynxFileError,
    LynxFormatError,
    LynxUsageError,
    LynxValueError,
)
from lynx_ext.pipeline.generation_settings import GenerationSettings

FAST = ["--preset", "tiny", "--num-inference-steps", "2", "--num-frames", "5", "--height", "64", "--width", "64",
        "--quiet"]


@pytest.fixture
def face_png(astronaut_png):
    return astronaut_png


@pytest.fixture
def no_loading(monkeypatch, tmp_path):
    """Any model build fails the test: what is refused must be refused before it."""
    import lynx_ext.models.build as build

    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))

    def trap(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(build, "build_wan_pipe", trap)


def refused(args, capsys, *needles) -> str:
    """Run ``generate args``: exit 2, one line on stderr holding every needle; return that line."""
    rc = generate(args)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def no_outputs(folder: Path) -> None:
    assert not list(folder.glob("*.mp4")) and not list(folder.glob("*_report.json"))


# ------------------------------------------------------------------------------------- class 1: nonsense refused
NONSENSE = [
    (["--num-inference-steps", "0"], "--num-inference-steps must be between 1 and 1000, got 0"),
    (["--height", "0"], "--height must be between 1"),
    (["--num-frames", "0"], "--num-frames must be between 1"),
    (["--fps", "0"], "--fps must be between 1"),
    (["--fps=-3"], "--fps must be between 1"),
    (["--cfg-scale", "nan"], "--cfg-scale must be a finite number, got nan"),
    (["--cfg-scale", "inf"], "--cfg-scale must be a finite number, got inf"),
    (["--id-scale", "nan"], "--id-scale must be a finite number"),
    (["--ref-scale=-inf"], "--ref-scale must be a finite number"),
    (["--cfg-scale", "1e6"], "The official value is 5"),
    (["--cfg-scale-i", "nan"], "--cfg-scale-i must be a finite number"),
    (["--step-window", "0.8", "0.2"], "--step-window is reversed"),
    (["--step-window", "0", "1.5"], "--step-window end must be between 0 and 1"),
    (["--blocks", "0-99"], "--blocks [4, 5,"),
    (["--blocks", "9-3"], "--blocks range '9-3' is reversed"),
    (["--sigma-shift", "0"], "--sigma-shift must be between"),
    (["--seed=-1"], "--seed must be between 0"),
]


@pytest.mark.parametrize("flags,needle", NONSENSE, ids=[" ".join(f) for f, _ in NONSENSE])
def test_nonsense_is_refused_by_the_cli(flags, needle, face_png, tmp_path, capsys, no_loading):
    refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), *FAST, *flags],
            capsys, needle)
    no_outputs(tmp_path)


def test_empty_prompt_and_missing_gpu_are_refused_by_the_cli(face_png, tmp_path, capsys, no_loading):
    refused(["--image", str(face_png), "--prompt", "  ", "--output", str(tmp_path / "o.mp4"), *FAST], capsys,
            "the prompt is empty")
    if not torch.cuda.is_available():
        refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), "--device", "cuda",
                 "--adapters", "hub:full"], capsys, "--device cuda: torch sees no CUDA GPU")
    refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), "--device", "gpu0"],
            capsys, "--device 'gpu0' is not a device")
    refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), *FAST, "--device",
             "cuda"], capsys, "--preset tiny runs on the CPU")


@pytest.mark.parametrize("flags,needle", [
    (["--vram-limit", "20"], "--preset tiny keeps its few weights in memory"),
    (["--block-streaming", "on"], "--preset tiny keeps its few weights in memory"),
    (["--fp8"], "--preset tiny keeps its few weights in memory"),
])
def test_memory_flags_on_the_tiny_preset_are_refused(flags, needle, face_png, tmp_path, capsys, no_loading):
    refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), *FAST, *flags], capsys,
            needle)
    no_outputs(tmp_path)


@pytest.mark.parametrize("flags,needle", [
    (["--block-streaming", "on"], "--block-streaming streams weights kept in CPU memory"),
    (["--compile", "--vram-limit", "20"], "--compile needs the DiT on the device"),
])
def test_memory_flags_that_do_not_combine_are_refused(flags, needle, face_png, tmp_path, capsys, no_loading):
    refused(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "o.mp4"), "--adapters", "hub:full",
             "--device", "cpu", *flags], capsys, needle)
    no_outputs(tmp_path)


@pytest.mark.parametrize("values,needle", [
    ({"num_inference_steps": 0}, "num_inference_steps must be between 1 and 1000, got 0"),
    ({"height": 0}, "height must be between 1"),
    ({"fps": -1}, "fps must be between 1"),
    ({"fps": 23.5}, "fps must be a whole number"),
    ({"cfg_scale": float("nan")}, "cfg_scale must be a finite number"),
    ({"cfg_scale": 1e9}, "cfg_scale must be between 0 and 30"),
    ({"cfg_scale_i": "twice"}, "cfg_scale_i must be a number, 'default' or null"),
    ({"id_scale": float("inf")}, "id_scale must be a finite number"),
    ({"step_window": (0.9, 0.1)}, "step_window is reversed"),
    ({"step_window": (0.5,)}, "step_window needs two fractions"),
    ({"blocks": [-1]}, "blocks entry must be at least 0"),
    ({"seed": "abc"}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"sampler": "ddim"}, "sampler must be one of unipc, euler"),
    ({"tiled": "yes"}, "tiled must be true or false"),
])
def test_nonsense_is_refused_by_generation_settings(values, needle):
    with pytest.raises(LynxValueError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        GenerationSettings(**values)
    with pytest.raises(LynxValueError, match="batch job 2: "):
        GenerationSettings.from_mapping(values, "batch job 2")


def test_settings_are_normalised():
    s = GenerationSettings(fps=24.0, blocks=[3, 1, 1], step_window=[0, 0.5], cfg_scale=5)
    assert s.fps == 24 and isinstance(s.fps, int) and s.blocks == (1, 3) and s.step_window == (0.0, 0.5)
    assert isinstance(s.cfg_scale, float)
    text = GenerationSettings.from_mapping({"seed": "7", "blocks": "0-2,5", "step_window": "0 0.6",
                                            "cfg_scale_i": "none", "tiled": "false"}, "row", text=True)
    assert (text.seed, text.blocks, text.step_window, text.cfg_scale_i, text.tiled) == (7, (0, 1, 2, 5),
                                                                                         (0.0, 0.6), None, False)


@pytest.fixture(scope="module")
def tiny_gen(tmp_path_factory):
    import os

    from lynx_ext.inference.tiny_preset import tiny_generator

    old = os.environ.get("LYNX_EXT_HOME")
    os.environ["LYNX_EXT_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        yield tiny_generator("full")
    finally:
        if old is None:
            os.environ.pop("LYNX_EXT_HOME")
        else:
            os.environ["LYNX_EXT_HOME"] = old


def test_nonsense_is_refused_by_the_generator_before_any_work(tiny_gen, face_png, monkeypatch):
    from lynx_ext.pipeline import set_scales

    calls = []
    monkeypatch.setattr(tiny_gen.face, "analyze", lambda *a, **k: calls.append(1))
    with pytest.raises(LynxValueError, match="prompt is empty"):
        tiny_gen.generate(face_png, "")
    with pytest.raises(LynxValueError, match="prompt must be text"):
        tiny_gen.generate(face_png, None)
    with pytest.raises(LynxValueError, match="num_inference_steps must be between 1 and 1000, got 0"):
        tiny_gen.generate(face_png, "x", num_inference_steps=0)
    with pytest.raises(LynxValueError, match="cfg_scale must be a finite number"):
        tiny_gen.generate(face_png, "x", cfg_scale=math.nan)
    with pytest.raises(LynxCompatibilityError, match=r"blocks \[7\] is outside the blocks of this DiT \(tiny\) "
                                                     r"\(0-3, 4 blocks\)"):
        tiny_gen.generate(face_png, "x", blocks=[0, 7])
    with pytest.raises(LynxValueError, match="unknown setting"):
        tiny_gen.generate(face_png, "x", num_steps=3)
    assert not calls  # the face photo was never even analysed
    with pytest.raises(LynxValueError, match="id_scale must be a finite number"):
        set_scales(tiny_gen.pipe, id_scale=math.nan)
    with pytest.raises(LynxValueError, match="step_window is reversed"):
        set_scales(tiny_gen.pipe, step_window=(1.0, 0.0))
    with pytest.raises(LynxCompatibilityError, match="outside the blocks"):
        set_scales(tiny_gen.pipe, blocks=[4])


def test_install_refuses_nonsense(tiny_pipe):
    from conftest import random_adapters

    from lynx_ext.pipeline import install, is_installed

    adapters = random_adapters(tiny_pipe.dit)
    for kwargs, needle in [({"id_scale": math.inf}, "id_scale must be a finite"), ({"blocks": [0, 40]}, "outside"),
                           ({"step_window": (0.5, 0.2)}, "reversed"), ({"ref_scale": -1}, "ref_scale must be")]:
        with pytest.raises(LynxUsageError, match=needle):
            install(tiny_pipe, adapters, **kwargs)
        assert not is_installed(tiny_pipe)


def test_device_that_is_not_there_is_an_error_not_a_fallback(monkeypatch, no_loading):
    from lynx_ext.inference.generator import LynxGenerator
    from lynx_ext.validation import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="device cuda: torch sees no CUDA GPU"):
        LynxGenerator.from_pretrained(device="cuda")
    assert check_device(None) == "cpu" and check_device("CPU") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceUnavailableError, match="cuda:3: this machine has 2 CUDA GPU"):
        check_device("cuda:3")
    with pytest.raises(LynxValueError, match="'tpu' is not a device"):
        check_device("tpu")


def test_reports_are_strict_json(tmp_path, face_png):
    from lynx_ext.inference.generator import GenerationResult
    from lynx_ext.outputs import dumps_strict, write_report

    def strict(text):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(f"{c} in JSON")))

    report = {"face_similarity": {"mean": math.nan, "per_frame": [0.5, math.inf, None]}, "path": tmp_path,
              "dtype": torch.float32}
    data = strict(write_report(report, tmp_path / "r.json").read_text())
    assert data["face_similarity"] == {"mean": None, "per_frame": [0.5, None, None]}
    assert data["dtype"] == "torch.float32" and data["path"] == str(tmp_path)
    frame = Image.new("RGB", (16, 16))
    paths = GenerationResult([frame, frame], 8, {"score": math.nan}).save(tmp_path / "clip.mp4")
    assert strict(paths["report"].read_text())["score"] is None
    assert strict(dumps_strict([float("-inf")])) == [None]


# ------------------------------------------------------------------------- class 2: refused before models load
def test_output_problems_are_refused_before_loading(face_png, tmp_path, capsys, no_loading):
    base = ["--image", str(face_png), "--prompt", "x", *FAST]
    (tmp_path / "afile").write_text("not a folder")
    refused(base + ["--output", str(tmp_path / "afile" / "o.mp4")], capsys, "afile is a file, not a folder")
    refused(base + ["--output", str(tmp_path / "o.avi")], capsys, "Unsupported video format '.avi'")
    (tmp_path / "folder.mp4").mkdir()
    refused(base + ["--output", str(tmp_path / "folder.mp4")], capsys, "is a folder; give a file name")
    (tmp_path / "taken_report.json").write_text("{}")
    refused(base + ["--output", str(tmp_path / "taken.mp4")], capsys, "Output already exists",
            "taken_report.json")
    refused(base + ["--output", str(tmp_path / "o.mp4"), "--lora", str(tmp_path / "nope.safetensors")], capsys,
            "LoRA file", "nope.safetensors does not exist")
    pickled = tmp_path / "lora.safetensors"
    pickled.write_bytes(pickle.dumps({"w": [1, 2]}))
    refused(base + ["--output", str(tmp_path / "o.mp4"), "--lora", str(pickled)], capsys, "a Python pickle")
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "taken.mp4").exists()


def test_batch_problems_are_refused_before_loading(face_png, tmp_path, capsys, no_loading):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"- {{image: {face_png}, prompt: a, output: same.mp4}}\n"
                    f"- {{image: {face_png}, prompt: b, output: same.mp4}}\n")
    out = ["--output-dir", str(tmp_path / "out"), *FAST]
    refused(["--batch", str(jobs), *out], capsys, "batch job 0 (jobs.yaml) and batch job 1 (jobs.yaml) would both "
                                                   "write")
    jobs.write_text(f"- {{image: {face_png}, prompt: a, seed: seven}}\n")
    refused(["--batch", str(jobs), *out], capsys, "batch job 0 (jobs.yaml): seed must be a whole number, got 'seven'")
    csv = tmp_path / "jobs.csv"
    csv.write_text(f"image,prompt,seed,num_frames\n{face_png},a,1,5\n{face_png},b,2,0\n")
    refused(["--batch", str(csv), *out], capsys, "batch job 1 (jobs.csv): num_frames must be between 1")
    csv.write_text(f"image,prompt,cfg_scale\n{face_png},a,lots\n")
    refused(["--batch", str(csv), *out], capsys, "batch job 0 (jobs.csv): cfg_scale must be a number, got 'lots'")
    jobs.write_text(f"- {{image: {face_png}, prompt: a}}\n- just a string\n")
    refused(["--batch", str(jobs), *out], capsys, "batch job 1 (jobs.yaml) is 'just a string'")
    jobs.write_text("- {image: [unclosed\n")
    refused(["--batch", str(jobs), *out], capsys, "is not valid YAML")
    jobs.write_text(f"- {{image: {face_png}, prompt: a, output: sub/a.mp4}}\n")
    refused(["--batch", str(jobs), "--output", str(tmp_path / "x.mp4"), *out], capsys,
            "--output names one video; with --batch")
    assert not (tmp_path / "out").exists()


def test_batch_paths_are_relative_to_the_batch_file_and_outputs_to_the_output_dir(face_png, tmp_path, capsys,
                                                                                   monkeypatch):
    import lynx_ext.cli.generate as cli

    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "face.png").write_bytes(face_png.read_bytes())
    (folder / "p.txt").write_text("an astronaut\n")
    (folder / "jobs.yaml").write_text("- {image: face.png, prompt: p.txt, output: one/a.mp4}\n"
                                      f"- {{image: face.png, prompt: b, output: {tmp_path / 'elsewhere.mp4'}}}\n")
    args = cli.build_parser().parse_args(["--batch", str(folder / "jobs.yaml"), "--output-dir",
                                          str(tmp_path / "out"), *FAST])
    jobs, planned, plan = cli.check_jobs(args)
    assert [j["image"] for j in jobs] == [str(folder / "face.png")] * 2
    assert jobs[0]["prompt_text"] == "an astronaut"
    assert planned == [tmp_path / "out" / "one" / "a.mp4", tmp_path / "elsewhere.mp4"]
    assert "note: batch job 1 (jobs.yaml) writes outside --output-dir" in capsys.readouterr().out
    assert plan.num_blocks == 4 and plan.device == "cpu"


def test_output_checks_through_the_api(tmp_path):
    from lynx_ext.outputs import OutputExistsError, check_targets

    (tmp_path / "f").write_text("")
    with pytest.raises(LynxFileError, match="job 0 and job 1 would both write"):
        check_targets([[tmp_path / "a.mp4"], [tmp_path / "b.mp4", tmp_path / "x" / ".." / "a.mp4"]], False)
    with pytest.raises(LynxFileError, match="is a file, not a folder"):
        check_targets([[tmp_path / "f" / "deeper" / "a.mp4"]], True)
    with pytest.raises(OutputExistsError, match="already exists"):
        check_targets([[tmp_path / "f"]], False)
    check_targets([[tmp_path / "f"], [tmp_path / "new" / "b.mp4"]], True)  # overwrite, folder created later


# ---------------------------------------------------------------------- class 3: messages that name the problem
def test_messages_name_the_flag_the_file_and_the_models(face_png, tmp_path, capsys, no_loading, tiny_pipe):
    from conftest import random_adapters

    base = ["--image", str(face_png), "--output", str(tmp_path / "o.mp4"), *FAST]
    refused(base + ["--prompt", "x", "--seed", "abc"], capsys, "argument --seed: invalid int value: 'abc'")
    refused(base + ["--prompt", "x", "--cfg-scale-i", "lots"], capsys, "--cfg-scale-i must be a number, got 'lots'")
    refused(base + ["--prompt", "x", "--num-frames", "1.5"], capsys, "--num-frames")
    refused(base + ["--prompt", ""], capsys, "the prompt is empty")
    latin = tmp_path / "prompt.txt"
    latin.write_bytes("une femme à la plage".encode("latin-1"))
    refused(base + ["--prompt", str(latin)], capsys, f"Prompt file {latin} is not UTF-8 text")
    blob = tmp_path / "adapters.safetensors"
    blob.write_bytes(bytes(range(256)) * 4)
    refused(base + ["--prompt", "x", "--adapters", str(blob)], capsys, "adapters.safetensors is not a format "
                                                                       "lynx-ext knows")
    pickled = tmp_path / "adapters.bin"
    pickled.write_bytes(pickle.dumps({"resampler.latents": [0.0]}))
    refused(base + ["--prompt", "x", "--adapters", str(pickled)], capsys, "a Python pickle (which lynx-ext does not "
                                                                          "unpickle)")
    ours = random_adapters(tiny_pipe.dit).save(tmp_path / "ours.safetensors")
    err = refused(base + ["--prompt", "x", "--adapters", str(ours), "--embedder", "dlib"], capsys,
                  "The face embedder 'dlib' gives 128-d embeddings but", "ours.safetensors", "take 512-d",
                  "facexlib or insightface")
    assert "or adapters trained on 128-d" in err
    lite = random_adapters(tiny_pipe.dit, variant="lite").save(tmp_path / "lite.safetensors")
    refused(base + ["--prompt", "x", "--adapters", str(lite)], capsys, "are lite adapters but the variant is 'full'")
    refused(base + ["--prompt", "x", "--adapters-revision", "abc", "--adapters", str(ours)], capsys,
            "--adapters-revision pins the official weights")
    refused(["--image", str(face_png), "--prompt", "x", "--adapters", "hub:medium"], capsys,
            "hub:medium is not an official variant")


def test_embedder_mismatch_through_the_api(tiny_pipe, face_png):
    from conftest import random_adapters

    from lynx_ext.conditioners import FaceAnalyzer
    from lynx_ext.inference.generator import LynxGenerator
    from lynx_ext.pipeline import EmbedderMismatchError, condition_on_face

    face = FaceAnalyzer.from_options(detector="dlib", embedder="dlib")
    adapters = random_adapters(tiny_pipe.dit)
    with pytest.raises(EmbedderMismatchError, match="'dlib-resnet-v1' gives 128-d .* take 512-d"):
        LynxGenerator.assemble(tiny_pipe, "full", adapters, [], face, [])
    with pytest.raises(EmbedderMismatchError, match="these full adapters take 512-d"):
        condition_on_face(face, face_png, adapters)
    assert issubclass(EmbedderMismatchError, LynxCompatibilityError)


# ---------------------------------------------------------------------------- class 4: our exceptions at the API
def test_library_exceptions_never_reach_the_api(tmp_path, tiny_pipe):
    from lynx_ext.adapters import LynxCheckpointError, load_lynx_adapters, read_adapters
    from lynx_ext.training.data import DatasetError, read_prepared
    from lynx_ext.training.dataset import usable_rows

    truncated = tmp_path / "cut.safetensors"
    from conftest import random_adapters

    whole = random_adapters(tiny_pipe.dit).save(tmp_path / "whole.safetensors").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    for bad, needle in [(truncated, "truncated"), (tmp_path / "p.pt", "pickle")]:
        if bad.suffix == ".pt":
            bad.write_bytes(pickle.dumps([1, 2, 3]))
        with pytest.raises(LynxCheckpointError, match=needle) as info:
            load_lynx_adapters(bad, tiny_pipe.dit)
        assert isinstance(info.value, LynxFormatError) and isinstance(info.value, LynxUsageError)
    with pytest.raises(FileNotFoundError) as info:
        read_adapters(tmp_path / "absent.safetensors")
    assert isinstance(info.value, LynxFileError)
    for call in (read_prepared, usable_rows):
        with pytest.raises(DatasetError if call is read_prepared else FileNotFoundError, match="does not exist|not a"):
            call(tmp_path / "no_such_cache")
    assert issubclass(DatasetError, LynxUsageError)
