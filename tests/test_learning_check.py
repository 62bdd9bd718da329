"""The learning-check script (`benchmarks/learning_check.py`) runs end to end on the CPU: a base pre-trained and
saved, adapters trained from it with the base frozen, the trained model saved and re-loaded exactly, and the
fast-mode sweep scoring each mode (its step cache really skipping, the exact mode its own reference).

Synthetic faces stand in for the photos (what is measured here is the plumbing, not identity)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("dlib")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import learning_check as lc  # noqa: E402


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lc")
    rng = np.random.default_rng(0)
    ids = np.array(["ann", "ann", "bob", "bob", "cy"])
    np.savez_compressed(folder / "faces.npz", crops=rng.integers(0, 255, (5, lc.SIZE, lc.SIZE, 3), dtype=np.uint8),
                        embeds=rng.standard_normal((5, 128)).astype(np.float32), ids=ids,
                        names=np.array([f"{n}_{i}.jpg" for i, n in enumerate(ids)]),
                        held_out=np.array([False, True, False, True, False]))
    return folder


def test_two_stage_training_shares_a_frozen_base(out):
    lc.train(out, minutes=0, batch=2, lr=1e-3, dev="cpu", base_minutes=0.01, save_base=out / "base")
    base = json.loads((out / "base" / "base.json").read_text())
    base_dit = {k[4:]: v for k, v in lc.load_parts(out / "base", "base").items()}  # bf16 parts of <= 15 MiB
    assert all(f.stat().st_size <= 16 * 2**20 for f in (out / "base").glob("base-*.safetensors"))
    assert base["steps"] > 0 and not (out / "samples.npz").exists()  # base only
    lc.train(out, minutes=0.01, batch=2, lr=1e-3, dev="cpu", seeds=1, load_base=out / "base",
             adapter_lr=1e-2, save_model_to=out / "model", gen_steps=2)
    log = json.loads((out / "train_log.json").read_text())
    assert log["protocol"] == "pretrained base, frozen" and log["base_steps"] == base["steps"] and log["steps"] > 0
    pipe = lc.build("cpu")
    context = lc.load_model(pipe, out / "model", "cpu")
    saved_dit = {k: v for k, v in pipe.dit.state_dict().items()}
    for key, value in base_dit.items():  # the base stayed frozen while the adapters trained
        assert torch.equal(saved_dit[key], value.to(torch.bfloat16).float()), key
    assert any(v.abs().sum() > 0 for k, v in pipe.lynx.state_dict().items() if "to_v_ip" in k)  # adapters moved
    assert context.shape == (1, 8, 32)
    samples = np.load(out / "samples.npz")
    assert samples["on"].shape == samples["off"].shape == (2, 1, lc.SIZE, lc.SIZE, 3)


def test_adapter_phase_with_the_recipes_memory_options(out, tmp_path):
    """--fp8-base and --optimizer: the adapter phase runs on the float8 base with the 8-bit optimiser, and the saved
    model holds the base's dequantised weights (within float8 rounding of the bf16 base it started from)."""
    lc.train(out, minutes=0, batch=2, lr=1e-3, dev="cpu", base_minutes=0.01, save_base=tmp_path / "base")
    lc.train(out, minutes=0.01, batch=2, lr=1e-3, dev="cpu", seeds=1, load_base=tmp_path / "base", adapter_lr=1e-2,
             save_model_to=tmp_path / "model", gen_steps=2, optimizer="bitsandbytes.optim.AdamW8bit", fp8_base=True)
    log = json.loads((out / "train_log.json").read_text())
    assert log["optimizer"] == "bitsandbytes.optim.AdamW8bit" and log["fp8_base"] is True
    pipe = lc.build("cpu")
    lc.load_model(pipe, tmp_path / "model", "cpu")
    base = {k[4:]: v.float() for k, v in lc.load_parts(tmp_path / "base", "base").items()}
    q = pipe.dit.blocks[0].self_attn.q.weight
    ref = base["blocks.0.self_attn.q.weight"]
    assert not torch.equal(q, ref) and float((q - ref).norm() / ref.norm()) < 0.05  # float8-rounded, not lost


def test_sweep_scores_every_mode(out):
    result = lc.sweep(out, out / "model", modes=("exact", "step_cache=50", "guidance_reuse=uncond"), seeds=1,
                      steps=6)
    modes = result["modes"]
    assert modes["exact"]["rel_image_change_vs_exact"] == 0.0
    assert modes["exact"]["n_generated"] == 2 and result["adapters_off"]["n_generated"] == 2
    cache = modes["step_cache=50"]["fast_stats_first_identity"]["step_cache"]["cond"]
    assert cache["skipped"] > 0 and cache["computed"] + cache["skipped"] == 6
    assert modes["guidance_reuse=uncond"]["fast_stats_first_identity"]["guidance_reused"] == 3
    assert all(0 <= m["top1"] <= 1 for m in modes.values())
    assert json.loads((out / "fast_modes.json").read_text())["modes"].keys() == modes.keys()
    with pytest.raises(ValueError, match="Unknown fast mode"):
        lc.fast_options("warp_drive")
