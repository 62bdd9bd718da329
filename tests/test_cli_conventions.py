"""DiffSynth's command-line conventions: ``--model_paths`` JSON lists, optional ``--extension``, ``--version``,
``--quiet`` silencing the host, kebab-case + snake_case flags everywhere, ``fit --help`` without warnings."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest_faces import astronaut_png, standin_pack  # noqa: F401
from safetensors.torch import load_file, save_file

from lynx_ext import __version__
from lynx_ext.cli import generate, prepare
from lynx_ext.cli.common import parse_model_paths, snake_case_flags
from lynx_ext.cli.foreign_flags import FOREIGN_FLAGS
from lynx_ext.cli.host_output import host_output_silenced
from lynx_ext.cli.main import main as diffsynth_ext

SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))
TINY = ["--num-inference-steps", "1", "--num-frames", "1", "--height", "32", "--width", "32"]


def _parsers() -> dict:
    """The argparse parser of every command the extension registers (fit is LightningCLI's, tested apart)."""
    import importlib

    from lynx_ext.extension import LynxExtension

    found = {}
    for command, target in LynxExtension.commands.items():
        module = importlib.import_module(target.partition(":")[0])
        if hasattr(module, "build_parser"):
            found[command] = module.build_parser
    return found


PARSERS = _parsers()


def _run(*argv, env=None):
    return subprocess.run([SCRIPT, *argv], capture_output=True, text=True, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------------------- --model-paths
def test_model_paths_accept_the_host_json_list_and_repeated_flags():
    assert parse_model_paths('["a.safetensors", ["s1.safetensors", "s2.safetensors"]]') == [
        "a.safetensors", ["s1.safetensors", "s2.safetensors"]]
    assert parse_model_paths("models/dit.safetensors") == ["models/dit.safetensors"]
    assert parse_model_paths('"quoted.pth"') == ["quoted.pth"]
    args = generate.build_parser().parse_args(["--model_paths", '["a", ["b", "c"]]', "--model-paths", "d"])
    assert args.model_paths == ["a", ["b", "c"], "d"]


@pytest.mark.parametrize("value, message", [
    ('["a.safetensors",', "is not valid JSON"), ("[[]]", "non-empty list of paths"), ("[1]", "entry 1 must be"),
    ('[["a", 2]]', 'entry ["a", 2] must be'), ("  ", "is empty")])
def test_bad_model_paths_say_what_is_wrong(value, message, capsys):
    with pytest.raises(SystemExit) as info:
        generate.build_parser().parse_args(["--model_paths", value])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_generate_loads_sharded_local_files_given_as_json(tiny_wan_dir, standin_pack,  # noqa: F811
                                                          astronaut_png, tmp_path, monkeypatch, capsys):
    """The host's JSON form end to end: a DiT split in two shards loads as one model, and the video is made."""
    from lynx_ext.tiny.adapters import tiny_adapters
    from lynx_ext.tiny.wan import load_tiny_pipe, register_tiny_wan

    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    register_tiny_wan(tiny_wan_dir)  # DiffSynth recognises models by their keys: declare the tiny ones
    dit = load_file(str(tiny_wan_dir / "dit.safetensors"))
    keys = sorted(dit)
    shards = [tmp_path / "dit-00001-of-00002.safetensors", tmp_path / "dit-00002-of-00002.safetensors"]
    save_file({k: dit[k] for k in keys[::2]}, str(shards[0]))
    save_file({k: dit[k] for k in keys[1::2]}, str(shards[1]))
    tiny_adapters(load_tiny_pipe(tiny_wan_dir).dit, "full").save(tmp_path / "adapters.safetensors")
    paths = json.dumps([[str(s) for s in shards], str(tiny_wan_dir / "text_encoder.safetensors"),
                        str(tiny_wan_dir / "vae.safetensors")])
    out = tmp_path / "clip.mp4"
    rc = diffsynth_ext(["generate", "--image", str(astronaut_png), "--prompt", "a person smiling",  # no --extension
                        "--model_paths", paths, "--tokenizer_path", str(tiny_wan_dir / "tokenizer"),
                        "--adapters", str(tmp_path / "adapters.safetensors"), "--face-models", str(standin_pack),
                        "--embedder", "insightface", "--device", "cpu", "--dtype", "fp32", "--output", str(out), *TINY])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    assert out.stat().st_size > 0
    report = json.loads((tmp_path / "clip_report.json").read_text())
    assert {Path(f["path"]).name for f in report["models"]["files"]} >= {s.name for s in shards}
    # DiffSynth loaded both shards as one model (it prints what it loads), and without --quiet the host talks
    decoder, marker = json.JSONDecoder(), "Loading models from: "
    loads = [decoder.raw_decode(block)[0] for block in captured.out.split(marker)[1:]]
    assert [str(s) for s in shards] in loads and not {str(s) for s in shards} & {x for x in loads if isinstance(x, str)}
    assert "VAE decoding" in captured.err


# ------------------------------------------------------------------------------------------------------ --quiet
def test_quiet_drops_the_host_prints_and_keeps_ours(capsys):
    from diffsynth.diffusion.base_pipeline import BasePipeline

    sizes = SimpleNamespace(height_division_factor=16, width_division_factor=16)
    BasePipeline.check_resize_height_width(sizes, 33, 32)  # a real host print
    assert "We round it up to 48" in capsys.readouterr().out
    with host_output_silenced():
        assert BasePipeline.check_resize_height_width(sizes, 33, 32) == (48, 32)
        print("our own line")
    out = capsys.readouterr().out
    assert out == "our own line\n"
    with host_output_silenced(False):
        BasePipeline.check_resize_height_width(sizes, 33, 32)
    assert "round it up" in capsys.readouterr().out


def test_console_script_quiet_generation_without_extension(astronaut_png, tmp_path):  # noqa: F811
    proc = _run("generate", "--preset", "tiny", "--image", str(astronaut_png), "--prompt", "hello", "--quiet",
                "--output", str(tmp_path / "q.mp4"), *TINY, env={"LYNX_EXT_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()  # our own lines only: the face analysis's notes, what was written
    assert any(line.startswith("wrote ") for line in lines) and (tmp_path / "q.mp4").is_file()
    assert all(line.startswith(("note: ", "wrote ", "      ")) for line in lines), proc.stdout
    for host_text in ("Loading models from", "Loaded model", "Model Downloader", "Using wan_video"):
        assert host_text not in proc.stdout
    assert "VAE decoding" not in proc.stderr and "%|" not in proc.stderr  # no progress bar, the host's included


# -------------------------------------------------------------------------------- --extension, --version, help
def test_version_everywhere():
    from importlib.metadata import version

    expected = f"lynx-ext {__version__} (diffsynth {version('diffsynth')}"
    top = _run("--version")
    assert top.returncode == 0 and top.stdout.startswith(f"diffsynth-ext: {expected}")
    for argv in (["generate", "--version"], ["fit", "--extension", "lynx", "--version"]):
        proc = _run(*argv)
        assert proc.returncode == 0 and expected in proc.stdout and f"diffsynth-ext {argv[0]} --extension lynx" \
            in proc.stdout, proc.stderr
    with pytest.raises(SystemExit) as info:
        prepare.build_parser().parse_args(["--version"])
    assert info.value.code == 0


def test_extension_may_be_left_out_only_when_one_is_installed(monkeypatch, capsys):
    import lynx_ext.extension as ext_module

    lynx = ext_module.LynxExtension()
    monkeypatch.setattr(ext_module, "load_extensions", lambda: {"lynx": lynx, "other": lynx})
    assert diffsynth_ext(["generate", "--version"]) == 2
    assert "2 extensions are installed (lynx, other); choose one with --extension NAME" in capsys.readouterr().err
    assert diffsynth_ext(["generate", "--extension", "other", "--version"]) == 0
    monkeypatch.setattr(ext_module, "load_extensions", lambda: {})
    assert diffsynth_ext(["generate"]) == 2 and "no DiffSynth extension is installed" in capsys.readouterr().err
    assert diffsynth_ext(["--quiet", "generate"]) == 2 and "is not a command" in capsys.readouterr().err


def test_every_multi_word_flag_has_both_spellings_and_the_shared_flags():
    for command, build in PARSERS.items():
        options = {o for a in build()._actions for o in a.option_strings if o.startswith("--")}
        for option in options:
            name = option[2:]
            twin = "--" + (name.replace("-", "_") if "-" in name else name.replace("_", "-"))
            assert twin in options, f"{command} {option} lacks its other spelling {twin}"
        assert {"--version", "--quiet", "--download-source", "--download_source"} <= options, command


def test_fit_accepts_kebab_case_and_its_help_has_no_warnings(capsys):
    from lynx_ext.cli import fit

    assert snake_case_flags(["--trainer.max-epochs=3", "--model.id-lr", "1e-4", "value-with-dash"]) == [
        "--trainer.max_epochs=3", "--model.id_lr", "1e-4", "value-with-dash"]
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "tiny_cpu.yaml"
    assert fit.main(["--config", str(recipe), "--trainer.max-epochs", "3", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "max_epochs: 3" in printed
    keys = _dotted_keys(yaml.safe_load(printed))
    for flag, hint in FOREIGN_FLAGS["fit"].items():  # every fit key a DiffSynth hint names exists
        for key in re.findall(r"--((?:model|data|trainer)\.[a-z_.]+)", hint):
            assert key in keys, f"--{flag}'s hint names --{key}, which fit does not have"
    proc = _run("fit", "--extension", "lynx", "--help")
    assert proc.returncode == 0 and "--trainer.max_epochs" in proc.stdout
    assert proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines()[0].startswith("usage: diffsynth-ext fit --extension lynx [-c CONFIG]")
    assert proc.stdout.split("\n\n")[0].split().count("fit") == 1  # not "... [options] fit": fit is typed once


def _dotted_keys(tree, prefix=""):
    keys = set()
    for key, value in (tree or {}).items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _dotted_keys(value, f"{prefix}{key}.")
    return keys


def test_every_usage_line_names_its_command_once():
    for command, build in PARSERS.items():
        usage = build().format_usage()
        assert usage.startswith(f"usage: diffsynth-ext {command} --extension lynx "), usage
        assert usage.split().count(command) == 1, usage


# ----------------------------------------------------------------------------------- DiffSynth's other spellings
def test_diffsynth_spellings_we_do_not_take_are_not_options_of_the_command():
    for command, build in PARSERS.items():
        options = {o for a in build()._actions for o in a.option_strings}
        taken = [f for f in FOREIGN_FLAGS.get(command, {}) if f"--{f}" in options or f"--{f.replace('_', '-')}" in options]
        assert not taken, f"{command} takes {taken}: drop them from FOREIGN_FLAGS"
    assert set(FOREIGN_FLAGS) <= set(PARSERS) | {"fit"}


@pytest.mark.parametrize("argv, ours", [
    (["generate", "--input_image", "face.jpg"], "use --image FACE"),
    (["generate", "--tiled"], "--no-tiled turns it off"),
    (["generate", "--tea-cache-l1-thresh", "0.1"], "use --step-cache THRESHOLD"),
    (["app", "--lora_alpha", "0.5"], "use --lora PATH:ALPHA"),
    (["prepare", "--dataset_base_path", "data/"], "use --dataset DIR"),
    (["fit", "--dataset_base_path", "data/"], "use --data.cache DIR"),
    (["fit", "--learning_rate=1e-4"], "use --model.optim.lr"),
    (["eval", "--output_path", "x"], "use --output DIR"),
])
def test_diffsynth_spellings_name_our_flag(argv, ours, capsys):
    assert diffsynth_ext([argv[0], "--extension", "lynx", *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert f"{argv[1].split('=')[0]} is DiffSynth-Studio's spelling" in err and ours in err, err
    assert err.count("\n") == 1


def test_diffsynth_spellings_are_named_by_the_command_itself(capsys):
    """Called without the front end (``lynx_ext.cli.generate.main``), the parser names our flag too."""
    assert generate.main(["--input_image", "face.jpg", "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "--input_image is DiffSynth-Studio's spelling" in err and "--image FACE" in err, err


# ------------------------------------------------------------------------------------------------------- the app
def test_app_takes_quiet_and_its_banner_names_share(tmp_path):
    """``app --quiet`` starts (it is on every command), and the start-up lines name the app's ``--share``, not
    Gradio's ``launch(share=True)``."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LYNX_EXT_HOME": str(tmp_path / "home"), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([SCRIPT, "app", "--extension", "lynx", "--quiet", "--port", str(port), "--output-dir",
                             str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=tmp_path)
    lines = []
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "--share" in line or "share=True" in line:
                break
    finally:
        proc.kill()
        proc.wait()
    text = "".join(lines)
    assert f"Running on local URL:  http://127.0.0.1:{port}" in text, text
    assert "start the app with --share" in text and "share=True" not in text and "launch()" not in text, text
