"""The registered extension and the ``diffsynth-ext`` console script."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from conftest import GEN

from lynx_ext.extension import ENTRY_POINT_GROUP, LynxExtension, load_extensions

SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))  # the console script of this environment


def test_entry_point_is_discoverable_and_cheap():
    exts = load_extensions()
    assert isinstance(exts["lynx"], LynxExtension)
    code = ("import sys, lynx_ext.extension as e; e.load_extensions(); "
            "print(any(m in sys.modules for m in ('torch', 'diffsynth', 'insightface', 'lynx_ext.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert ENTRY_POINT_GROUP == "diffsynth.extensions"


def test_extension_object_installs_and_uninstalls(tiny_pipe, tmp_path):
    base = tiny_pipe(**GEN)
    ext = load_extensions()["lynx"]
    ext.install(tiny_pipe, variant="full")  # fresh, zero-initialised adapters
    assert tiny_pipe.lynx.config.variant == "full"
    emb = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    assert torch.equal(tiny_pipe(**GEN, lynx_id_embeds=emb), base)
    ext.set_scales(tiny_pipe, id_scale=0.5)
    from lynx_ext.pipeline import installation

    assert installation(tiny_pipe).settings.id_scale == 0.5
    tiny_pipe.lynx.save(tmp_path / "a.safetensors")
    ext.uninstall(tiny_pipe)
    ext.install(tiny_pipe, tmp_path / "a.safetensors")
    assert tiny_pipe.lynx.config.id_blocks == list(range(len(tiny_pipe.dit.blocks)))


def test_extension_declares_its_commands():
    """The contract: every command maps to an importable ``module:function`` taking argv (run here with --help)."""
    import importlib

    from lynx_ext.extension import DiffSynthExtension

    ext = load_extensions()["lynx"]
    assert isinstance(ext, DiffSynthExtension)
    assert set(ext.commands) >= {"generate", "prepare", "fit"}
    for command, target in ext.commands.items():
        module, _, function = target.partition(":")
        main = getattr(importlib.import_module(module), function)
        assert callable(main), command
    from lynx_ext.cli.main import main as cli_main

    help_run = subprocess.run([SCRIPT, "generate", "--extension", "lynx", "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "--image" in help_run.stdout
    assert cli_main(["nope-command", "--extension", "lynx"]) == 2


def test_console_script():
    listed = subprocess.run([SCRIPT, "extensions"], capture_output=True, text=True)
    assert listed.returncode == 0 and "lynx" in listed.stdout and "generate" in listed.stdout
    only_one = subprocess.run([SCRIPT, "generate"], capture_output=True, text=True)  # lynx is the only extension
    assert only_one.returncode == 2 and "Give --image and --prompt" in only_one.stderr
    unknown = subprocess.run([SCRIPT, "generate", "--extension", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "No DiffSynth extension named 'nope'" in unknown.stderr
