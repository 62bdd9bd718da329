"""Speed options on the tiny model: the exact path's transformations match it, the fast modes deviate boundedly
and skip what they say they skip (speed itself is measured by benchmarks/bench_14b_speed.py, not here)."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
from conftest import GEN, random_adapters
from torch import nn

from lynx_ext.adapters.compute import (
    _COMPILED, ComputeOptions, fp8_matmul, fp8_weight, project, rms, rope_fp32, rope_table)
from lynx_ext.pipeline import install, installation
from lynx_ext.pipeline.fast_modes import FastOptions, StepCacheRule
from lynx_ext.pipeline.generation_settings import GenerationSettings

EMB = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)
REF = torch.randn(1, 16, 1, 4, 4, generator=torch.Generator().manual_seed(5))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def lynx_call(pipe, fast=None, **over):
    kw = dict(GEN, lynx_id_embeds=EMB, lynx_ref_latents=REF, cfg_scale_i=2.0, output_type="floatpoint")
    kw.update(over)
    return pipe(**kw, lynx_fast=fast)


def counting_forwards(pipe) -> list:
    """Counts the host model-function calls (one per DiT forward) of an installed pipeline."""
    inst = installation(pipe)
    host, calls = inst.host_model_fn, []

    def counted(*a, **k):
        calls.append(1)
        return host(*a, **k)

    inst.host_model_fn = counted
    return calls


# ----------------------------------------------------------------------------------------------- pure kernels
def test_fp32_rope_and_norm_equal_the_host():
    from diffsynth.models.wan_video_dit import RMSNorm, precompute_freqs_cis, rope_apply

    freqs = precompute_freqs_cis(12, 64)[:10].reshape(10, 1, -1)  # head_dim 12, 10 positions
    x = torch.randn(2, 10, 3 * 12)
    assert rel(rope_fp32(x, rope_table(freqs), 3), rope_apply(x, freqs, 3)) < 1e-6
    assert rel(rope_fp32(x, rope_table(freqs), 3), x) > 0.1  # it rotates
    norm = RMSNorm(36, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    assert torch.allclose(rms(x, norm.weight, norm.eps), norm(x), atol=1e-6)


def test_fused_projection_equals_separate_layers():
    layers = [nn.Linear(16, n) for n in (8, 8, 4)]
    x = torch.randn(3, 5, 16)
    fused = project(x, layers, ComputeOptions(fuse_projections=True))
    assert [t.shape[-1] for t in fused] == [8, 8, 4]
    for y, lin in zip(fused, layers):
        assert torch.allclose(y, lin(x), atol=1e-6)


def test_fp8_weights_follow_parameter_changes():
    lin = nn.Linear(32, 16)
    x = torch.randn(7, 32)
    first = fp8_weight(lin)
    assert first.weight.dtype == torch.float8_e4m3fn and fp8_weight(lin) is first  # cached
    y = fp8_matmul(x, first.weight, first.scale, lin.bias)
    assert 1e-4 < rel(y, lin(x)) < 0.08  # float8: close, not equal
    with torch.no_grad():
        lin.weight.mul_(-2)  # an in-place write (LoRA fusing, load_state_dict, optimiser step)
    second = fp8_weight(lin)
    assert second is not first
    assert rel(fp8_matmul(x, second.weight, second.scale, lin.bias), lin(x)) < 0.08


# ----------------------------------------------------------------------------------------------- exact path
def test_exact_path_options_match_the_unoptimised_path(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    module_calls = []
    for block in tiny_pipe.dit.blocks:
        for layer in (block.self_attn.q, block.self_attn.v):
            layer.register_forward_hook(lambda *a: module_calls.append(1))
    base = lynx_call(tiny_pipe)
    assert module_calls
    module_calls.clear()
    fused = lynx_call(tiny_pipe, FastOptions(ComputeOptions(fuse_projections=True)))
    # only the two reference passes (which run exact) called the modules: every denoising q/v was fused
    assert len(module_calls) == 2 * 2 * len(tiny_pipe.dit.blocks)
    assert rel(fused, base) < 1e-5
    math = lynx_call(tiny_pipe, FastOptions(ComputeOptions(attention="math", fuse_projections=True)))
    assert rel(math, base) < 1e-5


def test_compiled_blocks_share_graphs_and_match(tiny_pipe):
    from torch._dynamo.utils import counters

    from lynx_ext.pipeline.speed import compile_dit

    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    base = lynx_call(tiny_pipe, num_inference_steps=1)
    torch._dynamo.reset()
    counters.clear()
    try:
        with redirect_stdout(io.StringIO()):
            compile_dit(tiny_pipe, backend="aot_eager")
        out = lynx_call(tiny_pipe, num_inference_steps=1)
        again = lynx_call(tiny_pipe, FastOptions(ComputeOptions(fuse_projections=True)), num_inference_steps=1)
        graphs = counters["stats"]["unique_graphs"]
    finally:
        _COMPILED.clear()
        torch._dynamo.reset()
    assert rel(out, base) < 1e-5 and rel(again, base) < 1e-5
    blocks = len(tiny_pipe.dit.blocks)
    # three block fragments shared by every block, plus the kernels (norm+RoPE, RMS norm) and their shape
    # variants; one graph per block would give at least 3 * blocks
    assert 3 <= graphs < 3 * blocks, graphs


# ----------------------------------------------------------------------------------------------- fast modes
def test_fp8_compute_runs_every_large_linear_in_float8(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    base = lynx_call(tiny_pipe)
    out = lynx_call(tiny_pipe, FastOptions(ComputeOptions(fp8=True)))
    assert 1e-6 < rel(out, base) < 0.05
    ffn = [layer for block in tiny_pipe.dit.blocks for layer in block.ffn if isinstance(layer, nn.Linear)]
    assert all(getattr(layer.__dict__.get("forward"), "lynx_fp8", False) for layer in ffn)
    assert torch.equal(lynx_call(tiny_pipe), base)  # without the option the FFN computes as nn.Linear


def test_step_cache_skips_blocks_and_keeps_the_window(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(num_inference_steps=5, cfg_scale_i=None)
    base = lynx_call(tiny_pipe, **kw)
    assert torch.equal(lynx_call(tiny_pipe, FastOptions(step_cache=1e-12), **kw), base)  # never skips: exact
    cached = lynx_call(tiny_pipe, FastOptions(step_cache=1e9), **kw)
    stats = tiny_pipe.lynx_fast_stats["step_cache"]
    assert set(stats) == {"cond", "uncond"}
    assert stats["cond"] == {"computed": 2, "skipped": 3}  # the first and the last step only
    assert 0 < rel(cached, base) < 1.0 and torch.isfinite(cached).all()
    lynx_call(tiny_pipe, FastOptions(step_cache=1e9), lynx_step_window=(0.0, 0.4), **kw)
    # steps 0 and 1 carry the adapters, 2-4 do not: step 2 recomputes (the cached residual had them), 4 is last
    assert tiny_pipe.lynx_fast_stats["step_cache"]["cond"] == {"computed": 3, "skipped": 2}


def test_step_cache_rule_uses_the_host_calibration_for_14b_shapes():
    from diffsynth.models.wan_video_dit import WanModel

    from lynx_ext.pipeline.fast_modes import calibration

    with torch.device("meta"):
        dit = WanModel(dim=5120, in_dim=16, ffn_dim=13824, out_dim=16, text_dim=4096, freq_dim=256, eps=1e-6,
                       patch_size=(1, 2, 2), num_heads=40, num_layers=40, has_image_input=False)
    coefficients = calibration(dit)
    assert coefficients is not None and len(coefficients) == 5
    rule = StepCacheRule(0.2, warmup=1, coefficients=coefficients)
    assert rule.rescale(0.1) == pytest.approx(sum(c * 0.1 ** (4 - i) for i, c in enumerate(coefficients)))
    assert calibration(type("Tiny", (), {"dim": 96, "blocks": [0] * 4})()) is None


@pytest.mark.parametrize("mode,forwards", [("uncond", 10), ("both", 8)])
def test_guidance_reuse_skips_branch_forwards(tiny_pipe, mode, forwards):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(num_inference_steps=4)
    base = lynx_call(tiny_pipe, **kw)
    calls = counting_forwards(tiny_pipe)
    out = lynx_call(tiny_pipe, FastOptions(guidance_reuse=mode), **kw)
    assert len(calls) - 2 == forwards  # 2: the reference passes; exact: 4 steps x 3 branches = 12
    assert tiny_pipe.lynx_fast_stats["guidance_reused"] == 12 - forwards
    assert 0 < rel(out, base) < 1.0 and torch.isfinite(out).all()


# ----------------------------------------------------------------------------------------------- settings
def test_settings_carry_the_speed_options_and_refuse_nonsense(tiny_pipe):
    s = GenerationSettings.from_mapping({"attention": "flash", "fuse_projections": True, "step_cache": 0.2,
                                         "guidance_reuse": "uncond", "fp8_compute": True}, "sweep arm")
    fast = s.pipe_kwargs()["lynx_fast"]
    assert fast.compute == ComputeOptions(attention="flash", fuse_projections=True, fp8=True)
    assert fast.step_cache == 0.2 and fast.guidance_reuse == "uncond"
    assert GenerationSettings().pipe_kwargs()["lynx_fast"].is_default
    for bad, match in (({"attention": "fast"}, "attention must be one of"), ({"step_cache": -1.0}, "positive"),
                       ({"guidance_reuse": "cond"}, "guidance_reuse must be")):
        with pytest.raises(ValueError, match=match):
            GenerationSettings(**bad).fast_options()
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    with pytest.raises(ValueError, match="needs a CUDA device"):
        lynx_call(tiny_pipe, FastOptions(ComputeOptions(attention="cudnn")))
    with pytest.raises(ValueError, match="act on Lynx generations"):
        tiny_pipe(**GEN, lynx_fast=FastOptions(step_cache=0.2))


def test_distillation_lora_four_steps_without_guidance(tiny_pipe):
    """The step-distillation recipe: a LoRA fused into the DiT, 4 steps, cfg 1 (one branch), the adapters kept
    to the first half of the steps and to some blocks."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(num_inference_steps=4, cfg_scale=1.0, cfg_scale_i=None, lynx_step_window=(0.0, 0.5), lynx_blocks=[0, 1])
    calls = counting_forwards(tiny_pipe)
    before = lynx_call(tiny_pipe, **kw)
    assert len(calls) == 1 + 4  # one reference pass, then one forward per step
    lora, g = {}, torch.Generator().manual_seed(1)
    for i, _ in enumerate(tiny_pipe.dit.blocks):
        for name in ("self_attn.q", "self_attn.k", "self_attn.v", "ffn.0"):
            fan_in = tiny_pipe.dit.dim
            fan_out = tiny_pipe.dit.blocks[i].ffn[0].out_features if name == "ffn.0" else tiny_pipe.dit.dim
            lora[f"blocks.{i}.{name}.lora_A.weight"] = torch.randn(4, fan_in, generator=g) * 0.3
            lora[f"blocks.{i}.{name}.lora_B.weight"] = torch.randn(fan_out, 4, generator=g) * 0.3
    with redirect_stdout(io.StringIO()):
        tiny_pipe.load_lora(tiny_pipe.dit, state_dict=lora, alpha=1.0)
    after = lynx_call(tiny_pipe, **kw)
    fused = lynx_call(tiny_pipe, FastOptions(ComputeOptions(fuse_projections=True)), **kw)
    assert rel(after, before) > 1e-3  # the LoRA acts
    assert rel(fused, after) < 1e-5  # the fused projections read the LoRA-fused weights


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_fast_modes_end_to_end(tmp_path, monkeypatch, capsys):
    import json

    from PIL import Image
    from skimage import data

    from lynx_ext.cli.generate import main as generate

    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    face = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(face)
    common = ["--image", str(face), "--prompt", "an astronaut smiling", "--preset", "tiny", "--num-inference-steps",
              "4", "--num-frames", "5", "--height", "64", "--width", "64", "--quiet", "--no-face-similarity"]
    out = tmp_path / "fast.mp4"
    rc = generate([*common, "--output", str(out), "--fuse-projections", "--attention", "math",
                   "--guidance-reuse", "both", "--step-cache", "1e9"])
    assert rc == 0, capsys.readouterr()
    report = json.loads((tmp_path / "fast_report.json").read_text())
    assert report["settings"]["guidance_reuse"] == "both" and report["settings"]["fuse_projections"] is True
    assert report["speed"]["guidance_reused"] == 2 * 2  # steps 1 and 3, uncond and identity
    assert report["speed"]["step_cache"]["cond"] == {"computed": 2, "skipped": 2}
    capsys.readouterr()
    rc = generate([*common, "--output", str(tmp_path / "bad.mp4"), "--attention", "cudnn"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs a CUDA device" in err[0]
    assert not (tmp_path / "bad.mp4").exists()


# ----------------------------------------------------------------------------------------------- exact decisions
def recording_branches(pipe):
    """Every host model-function call of an installed pipeline as ``{"t", "ran", "out", "context", "id_tokens"}``:
    its timestep, whether the DiT's first block ran (False: the step cache skipped the blocks), its prediction and
    the context and identity tokens bound for it."""
    inst = installation(pipe)
    host, calls = inst.host_model_fn, []

    def recorded(*a, **k):
        calls.append({"t": float(k["timestep"].flatten()[0]), "ran": False, "context": k["context"],
                      "id_tokens": inst.handle.inputs.id_tokens})
        calls[-1]["out"] = out = host(*a, **k)
        return out

    def ran(module, args):
        calls[-1]["ran"] = True

    inst.host_model_fn = recorded
    pipe.dit.blocks[0].register_forward_pre_hook(ran)
    return calls


def t_mod_of(dit, t: float) -> torch.Tensor:
    """The timestep modulation the host computes for ``t`` (what the step-cache rule measures)."""
    from wiring_probes import time_input

    like = torch.zeros(1)
    with torch.no_grad():
        return dit.time_projection(dit.time_embedding(time_input(dit, t, like))).float()


def test_step_cache_accumulates_the_change_until_the_threshold(tiny_pipe):
    """Between the thresholds that never / always skip: the relative t_mod change is summed over skipped steps, and
    the blocks run again at the step where the sum reaches the threshold (then it starts from 0)."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(num_inference_steps=5, cfg_scale_i=None)
    calls = recording_branches(tiny_pipe)
    lynx_call(tiny_pipe, **kw)
    steps = sorted({c["t"] for c in calls if c["t"] > 0}, reverse=True)  # t = 0: the reference passes
    assert len(steps) == 5
    t_mods = [t_mod_of(tiny_pipe.dit, t) for t in steps]
    change = [None] + [float((t_mods[k] - t_mods[k - 1]).abs().mean() / t_mods[k - 1].abs().mean())
                       for k in range(1, 5)]
    # above every single step's change, below the sum of two: only an accumulated change reaches it
    threshold = (max(change[1:4]) + change[1] + change[2]) / 2
    assert max(change[1:4]) < threshold < change[1] + change[2]
    calls.clear()
    out = lynx_call(tiny_pipe, FastOptions(step_cache=threshold), **kw)
    cond_context = next(c for c in calls if c["t"] > 0)["context"]  # each step runs cond first
    cond = [c for c in calls if c["t"] > 0 and c["context"] is cond_context]
    assert [c["t"] for c in cond] == steps
    # step 0 (warm-up) and 4 (last) always run; 1 skips (change[1] < threshold), 2 runs (change[1] + change[2]),
    # 3 skips again (the sum restarted at step 2)
    assert [k for k, c in enumerate(cond) if not c["ran"]] == [1, 3]
    assert tiny_pipe.lynx_fast_stats["step_cache"]["cond"] == {"computed": 3, "skipped": 2}
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("mode", ["uncond", "identity", "both"])
def test_guidance_reuse_derives_the_skipped_branch_from_the_last_measured_difference(tiny_pipe, mode):
    """On odd steps a reused branch's prediction is ``cond_now - (cond - branch)`` of the step before, and the
    step's output is the official three-branch combination of it: ``u + gi (i - u) + g (c - i)``."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    g, gi = 5.0, 2.0
    calls = recording_branches(tiny_pipe)
    outputs = []
    model_fn = tiny_pipe.model_fn

    def recorded_model_fn(*a, **k):
        outputs.append(model_fn(*a, **k))
        return outputs[-1]

    tiny_pipe.model_fn = recorded_model_fn
    lynx_call(tiny_pipe, FastOptions(guidance_reuse=mode), num_inference_steps=4, cfg_scale=g, cfg_scale_i=gi)
    calls = [c for c in calls if c["t"] > 0]  # not the reference passes (t = 0)
    cond_context, cond_tokens = calls[0]["context"], calls[0]["id_tokens"]

    def name(call):
        if call["context"] is cond_context:
            return "cond"
        return "identity" if call["id_tokens"] is cond_tokens else "uncond"

    steps: list[dict] = []
    for call in calls:
        if name(call) == "cond":
            steps.append({})
        steps[-1][name(call)] = call["out"]
    reused = {"uncond": {"uncond"}, "identity": {"identity"}, "both": {"uncond", "identity"}}[mode]
    assert len(steps) == len(outputs) == 4
    held = {}
    for k, (step, out) in enumerate(zip(steps, outputs)):
        assert set(step) == ({"cond", "uncond", "identity"} - reused if k % 2 else {"cond", "uncond", "identity"})
        branch = dict(step)
        for b in reused:
            if k % 2:
                branch[b] = step["cond"] - held[b]  # the difference measured at the step before
            else:
                held[b] = step["cond"] - step[b]
        u, i, c = branch["uncond"], branch["identity"], branch["cond"]
        expected = u + gi * (i - u) + g * (c - i)
        assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6), (k, float((out - expected).abs().max()))
    assert tiny_pipe.lynx_fast_stats["guidance_reused"] == 2 * len(reused)
