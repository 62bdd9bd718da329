"""``diffsynth-ext convert --extension lynx`` end to end, and ``generate --adapters`` with every layout."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from lynx_ext.adapters.formats import read_adapters, write_adapters
from lynx_ext.cli.convert import main as convert
from lynx_ext.cli.generate import main as generate
from lynx_ext.tiny.adapters import tiny_adapters


@pytest.fixture(scope="module")
def dit(tiny_wan_dir):
    from lynx_ext.tiny.wan import load_tiny_pipe

    return load_tiny_pipe(tiny_wan_dir).dit


def _equal(a, b):
    return a.config == b.config and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_convert_chain_and_dtype_note(tmp_path, dit, capsys):
    original = tiny_adapters(dit, "full", seed=4)
    original.save(tmp_path / "mine.safetensors")
    rc = convert([str(tmp_path / "mine.safetensors"), "--to", "comfyui", "--output", str(tmp_path / "comfy"),
                  "--dtype", "fp16"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "read lynx-ext adapters" in out.out and "casting to fp16 changes" in out.out and "not bit-exact" in out.out
    assert "wrote " + str(tmp_path / "comfy" / "lynx_full_ip_layers_fp16.safetensors") in out.out
    assert "16 registers (these: 4)" in out.err  # the tiny adapters are not the wrapper's 14B shapes: said so
    assert convert([str(tmp_path / "comfy"), "--to", "official", "--output", str(tmp_path / "lynx_full")]) == 0
    out = capsys.readouterr().out
    assert "read comfyui adapters" in out and "not bit-exact" not in out  # fp16 -> fp16: nothing to say
    back = tmp_path / "back.safetensors"
    assert convert([str(tmp_path / "lynx_full"), "--to", "lynx-ext", "--output", str(back)]) == 0
    assert _equal(read_adapters(tmp_path / "back.safetensors"), read_adapters(tmp_path / "mine.safetensors").half())
    # Lossless without --dtype: fp32 -> ComfyUI -> ours is bit-exact, and nothing is said about precision.
    assert convert([str(tmp_path / "mine.safetensors"), "--to", "comfyui", "--output", str(tmp_path / "c32")]) == 0
    assert convert([str(tmp_path / "c32"), "--to", "lynx-ext", "--output", str(tmp_path / "b32.safetensors")]) == 0
    assert "not bit-exact" not in capsys.readouterr().out
    assert _equal(read_adapters(tmp_path / "b32.safetensors"), original)


def test_convert_refuses_to_overwrite_and_bad_input(tmp_path, dit, capsys):
    tiny_adapters(dit, "lite").save(tmp_path / "a.safetensors")
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"precious")
    assert convert([str(tmp_path / "a.safetensors"), "--to", "lynx-ext", "--output", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err and target.read_bytes() == b"precious"
    assert convert([str(tmp_path / "a.safetensors"), "--to", "lynx-ext", "--output", str(target), "--overwrite"]) == 0
    assert read_adapters(target).config.variant == "lite"
    write_adapters(read_adapters(target), tmp_path / "c", "comfyui")
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").iterdir()}
    assert convert([str(tmp_path / "a.safetensors"), "--to", "comfyui", "--output", str(tmp_path / "c")]) == 2
    assert "already holds" in capsys.readouterr().err
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "c").iterdir()}
    (tmp_path / "p.safetensors").write_bytes(pickle.dumps({"w": 1}))
    assert convert([str(tmp_path / "p.safetensors"), "--to", "comfyui", "--output", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Python pickle" in err and "not Lynx adapter weights" in err
    assert not (tmp_path / "d").exists()
    assert convert([str(tmp_path / "a.safetensors"), "--to", "lynx-ext", "--output", str(tmp_path / "x.bin")]) == 2
    assert ".safetensors" in capsys.readouterr().err


def test_diffsynth_ext_dispatches_convert(tmp_path, dit):
    from lynx_ext.cli.main import main as diffsynth_ext  # the console script's entry point, via the entry points

    tiny_adapters(dit, "lite").save(tmp_path / "a.safetensors")
    assert diffsynth_ext(["convert", "--extension", "lynx", str(tmp_path / "a.safetensors"), "--to", "official",
                          "--output", str(tmp_path / "lynx_lite")]) == 0
    assert sorted(p.name for p in (tmp_path / "lynx_lite").iterdir()) == [
        "ip_layers.safetensors", "resampler.safetensors", "resampler_config.json"]


# ------------------------------------------------------------------------------------ generate --adapters
FAST = ["--preset", "tiny", "--num-inference-steps", "2", "--num-frames", "1", "--height", "64", "--width", "64",
        "--quiet", "--no-face-similarity"]


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def _generate(face_png, out, adapters, *extra):
    rc = generate(["--image", str(face_png), "--prompt", "a person smiling", "--output", str(out), "--adapters",
                   str(adapters), *FAST, *extra])
    assert rc == 0
    report = json.loads(out.with_name(out.stem + "_report.json").read_text())
    assert report["models"]["adapters"] == str(adapters)
    return np.asarray(Image.open(out.with_name(out.stem + "_frames.png")))


def test_generate_accepts_every_layout(face_png, tmp_path, dit):
    adapters = tiny_adapters(dit, "full", seed=1)
    adapters.save(tmp_path / "ours.safetensors")
    write_adapters(adapters, tmp_path / "lynx_full", "official")
    write_adapters(adapters, tmp_path / "comfy", "comfyui")
    ours = _generate(face_png, tmp_path / "ours.mp4", tmp_path / "ours.safetensors")
    assert np.array_equal(_generate(face_png, tmp_path / "official.mp4", tmp_path / "lynx_full"), ours)
    assert np.array_equal(_generate(face_png, tmp_path / "comfy.mp4", tmp_path / "comfy"), ours)
    tiny_adapters(dit, "full", seed=2).save(tmp_path / "other.safetensors")
    assert not np.array_equal(_generate(face_png, tmp_path / "other.mp4", tmp_path / "other.safetensors"), ours)


def test_generate_with_mixed_lite_ip_full_ref_comfyui_files(face_png, tmp_path, dit, capsys):
    from test_adapter_formats import mixed_adapters

    write_adapters(mixed_adapters(dit), tmp_path / "mixed", "comfyui", dtype=torch.float16)
    with_ref = _generate(face_png, tmp_path / "a.mp4", tmp_path / "mixed", "--variant", "lite")
    without_ref = _generate(face_png, tmp_path / "b.mp4", tmp_path / "mixed", "--variant", "lite", "--ref-scale", "0")
    assert not np.array_equal(with_ref, without_ref)  # the Ref layers of the mixed set are in use
    rc = generate(["--image", str(face_png), "--prompt", "x", "--output", str(tmp_path / "c.mp4"), "--adapters",
                   str(tmp_path / "mixed"), *FAST])
    assert rc == 2 and "lite-ID + full-Ref" in capsys.readouterr().err and not (tmp_path / "c.mp4").exists()
