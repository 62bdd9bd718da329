"""Training wiring: a training forward after a block-selected generation uses every block; adapter initialisation
does not depend on what loading drew; a SIGKILLed ``diffsynth-ext fit`` resumes where it stopped and ends bit-identical
to an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from wiring_probes import tiny_recipe_for, WiringProbe, face_image, prepare_tiny_training_data

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny" / "tiny_cpu.yaml"
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return prepare_tiny_training_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home_wiring"))


def fit_args(cache, root, steps: int, *extra: str) -> list[str]:
    return ["--config", str(tiny_recipe_for(Path(cache).parent, False)), "--data.cache", str(cache), "--trainer.default_root_dir", str(root),
            "--trainer.max_steps", str(steps), "--trainer.enable_progress_bar", "false",
            "--data.token_budget", "70", *extra]  # 70 tokens: 3 packs per epoch, so 5 steps cross an epoch


def step_log(path: Path) -> list[str]:
    return ["--trainer.callbacks+=wiring_probes.StepLog", f"--trainer.callbacks.path={path}"]


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_training_after_a_block_selected_generation_uses_every_block(cache, tmp_path):
    from lynx_ext.cli.fit import make_cli

    cli = make_cli(fit_args(cache, tmp_path, 1), run=False)
    module = cli.model
    module.configure_model()
    pipe = module.pipe
    all_blocks = set(range(len(pipe.dit.blocks)))
    with WiringProbe(pipe, keep_attn_inputs=False) as probe:
        pipe(prompt="an astronaut", height=32, width=32, num_frames=1, num_inference_steps=1, cfg_scale=1.0,
             seed=0, tiled=False, progress_bar_cmd=lambda x: x, lynx_id_embeds=torch.randn(1, 128),
             lynx_ref_image=face_image(), lynx_blocks=[0])
    assert probe.steps and all(r.adapter_blocks == ({0}, {0}) for s in probe.steps for r in s.records)
    with WiringProbe(pipe, keep_attn_inputs=False) as probe:
        cli.trainer.fit(module, datamodule=cli.datamodule)
    trained = [r for r in probe.records if (r.id_tokens or r.ref_features) and not r.is_recomputation]
    assert trained, "no training forward ran the adapters"
    for rec in trained:
        assert rec.adapter_blocks == (all_blocks, all_blocks), rec.adapter_blocks


def test_adapter_initialisation_does_not_depend_on_what_loading_drew(cache, tmp_path, monkeypatch):
    """The first run on a machine builds the tiny base (drawing random numbers), later runs find it built: both must
    start from the same adapters, or two runs of one recipe (and a run and its resumption) differ."""
    from lynx_ext.cli.fit import make_cli

    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "fresh_home"))
    weights = []
    for _ in range(2):  # the first builds the base, the second loads it
        cli = make_cli(fit_args(cache, tmp_path, 1, "--model.adapters.init", "random"), run=False)
        cli.model.configure_model()
        weights.append({k: v.clone() for k, v in cli.model.pipe.lynx.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def run_fit(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([SCRIPT, "fit", "--extension", "lynx", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # four training runs, three of them fresh processes
def test_sigkilled_fit_resumes_where_it_stopped(cache, tmp_path):
    """Kill -9 after step 3 (checkpoint at step 2), then resume twice, by ``--ckpt_path last`` and by the path."""
    import shutil

    from lynx_ext.cli.fit import main

    steps = 5
    # The uninterrupted reference run (in this process).
    assert main(fit_args(cache, tmp_path / "straight", steps, *step_log(tmp_path / "straight.jsonl"))) == 0
    straight = read_log(tmp_path / "straight.jsonl")
    assert [e["step"] for e in straight] == list(range(steps))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                                        os.environ.get("PYTHONPATH", "")]))
    killed_run, marker = tmp_path / "killed", tmp_path / "hanging"
    proc = run_fit(fit_args(cache, killed_run, steps, *step_log(tmp_path / "killed.jsonl"),
                            "--trainer.callbacks+=wiring_probes.HangAfterStep", "--trainer.callbacks.step=3",
                            f"--trainer.callbacks.marker={marker}"), env)
    try:
        deadline = time.monotonic() + 600
        while not marker.is_file():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the run never reached step 3"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert [e["step"] for e in read_log(tmp_path / "killed.jsonl")] == [0, 1, 2]  # step 3's update done, then -9
    checkpoint = Path("lightning_logs") / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(killed_run / checkpoint, weights_only=False, map_location="cpu")
    assert saved["global_step"] == 2, saved["global_step"]  # the step-3 update died with the process
    reference = load_file(str(tmp_path / "straight" / "adapters" / "latest" / "lynx_adapters.safetensors"))

    for how in ("last", "path"):
        run = tmp_path / f"resumed_{how}"
        shutil.copytree(killed_run, run)
        log = tmp_path / f"resumed_{how}.jsonl"
        proc = run_fit(fit_args(cache, run, steps, *step_log(log),
                                "--ckpt_path", "last" if how == "last" else str(run / checkpoint)), env)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
        resumed = read_log(log)
        # It starts at the checkpoint's step, on the data the uninterrupted run saw there, not at step 0.
        assert [e["step"] for e in resumed] == list(range(2, steps)), (how, resumed)
        assert resumed == straight[2:], how
        final = load_file(str(run / "adapters" / "latest" / "lynx_adapters.safetensors"))
        assert final.keys() == reference.keys()
        differ = [k for k in final if not torch.equal(final[k], reference[k])]
        assert not differ, (how, differ[:4])
