"""Installing Lynx into a real (tiny) DiffSynth WanVideoPipeline: no-op guarantees, reversibility, host features."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
from conftest import GEN, random_adapters, tiny_adapter_config

from lynx_ext.adapters import LynxAdapters, LynxForwardInputs
from lynx_ext.pipeline import LynxInstallError, install, installation, set_scales, uninstall

EMB = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)


def ref_latents(pipe):
    return torch.randn(1, 16, 1, 4, 4, generator=torch.Generator().manual_seed(5))


def test_zero_init_adapters_are_bit_identical(tiny_pipe):
    base = tiny_pipe(**GEN)
    install(tiny_pipe, LynxAdapters(tiny_adapter_config(tiny_pipe.dit), init="zero"))
    out = tiny_pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe))
    assert torch.equal(out, base)


def test_adapters_change_output_and_uninstall_restores(tiny_pipe):
    base = tiny_pipe(**GEN)
    keys = list(tiny_pipe.dit.state_dict())
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    assert list(tiny_pipe.dit.state_dict()) == keys
    assert type(tiny_pipe).__name__ == "LynxWanVideoPipeline"
    without_inputs = tiny_pipe(**GEN)
    assert torch.equal(without_inputs, base)
    out = tiny_pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe), cfg_scale_i=2.0)
    assert (out - base).abs().max() > 1e-3
    uninstall(tiny_pipe)
    assert type(tiny_pipe).__name__ == "WanVideoPipeline"
    assert "lynx" not in tiny_pipe.in_iteration_models and not hasattr(tiny_pipe, "lynx")
    assert all("forward" not in b.self_attn.__dict__ and "forward" not in b.cross_attn.__dict__
               for b in tiny_pipe.dit.blocks)
    assert torch.equal(tiny_pipe(**GEN), base)


def test_scale_zero_equals_base_and_scales_matter(tiny_pipe):
    base = tiny_pipe(**GEN)
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(GEN, lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe))
    zero = tiny_pipe(**kw, lynx_id_scale=0.0, lynx_ref_scale=0.0)
    assert torch.equal(zero, base)
    one = tiny_pipe(**kw)
    set_scales(tiny_pipe, id_scale=0.0, ref_scale=0.0)
    assert torch.equal(tiny_pipe(**kw), base)
    set_scales(tiny_pipe, id_scale=1.0, ref_scale=1.0)
    assert torch.equal(tiny_pipe(**kw), one)


def test_lora_fuses_on_installed_pipe(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    kw = dict(GEN, lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe))
    before = tiny_pipe(**kw)
    lora = {}
    g = torch.Generator().manual_seed(1)
    for i, _ in enumerate(tiny_pipe.dit.blocks):
        for name in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.o"):
            lora[f"blocks.{i}.{name}.lora_A.weight"] = torch.randn(4, tiny_pipe.dit.dim, generator=g) * 0.1
            lora[f"blocks.{i}.{name}.lora_B.weight"] = torch.randn(tiny_pipe.dit.dim, 4, generator=g) * 0.1
    buf = io.StringIO()
    with redirect_stdout(buf):
        tiny_pipe.load_lora(tiny_pipe.dit, state_dict=lora, alpha=1.0)
    fused = int(buf.getvalue().split(" tensors are fused")[0].split()[-1])
    assert fused == 6 * len(tiny_pipe.dit.blocks)
    after = tiny_pipe(**kw)
    assert (after - before).abs().max() > 1e-4


def test_vram_managed_dit_applies_branches(tiny_wan_dir):
    from lynx_ext.compat import ensure_cpu_empty_cache
    from lynx_ext.tiny.wan import load_tiny_pipe

    ensure_cpu_empty_cache()
    vram = dict(offload_device="cpu", offload_dtype=torch.float32, onload_device="cpu", onload_dtype=torch.float32,
                computation_device="cpu", computation_dtype=torch.float32)
    pipe = load_tiny_pipe(tiny_wan_dir, **vram)
    assert pipe.vram_management_enabled
    assert type(pipe.dit.blocks[0]).__name__ == "AutoWrappedNonRecurseModule"
    base = pipe(**GEN)
    install(pipe, random_adapters(pipe.dit))
    out = pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(pipe))
    assert (out - base).abs().max() > 1e-3
    assert installation(pipe).handle.inputs.capture is None
    uninstall(pipe)
    assert torch.equal(pipe(**GEN), base)


def test_install_guards(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    with pytest.raises(LynxInstallError, match="already installed"):
        install(tiny_pipe, random_adapters(tiny_pipe.dit))
    uninstall(tiny_pipe)
    with pytest.raises(LynxInstallError, match="not installed"):
        uninstall(tiny_pipe)
    tiny_pipe.use_unified_sequence_parallel = True
    with pytest.raises(LynxInstallError, match="sequence parallel"):
        install(tiny_pipe, random_adapters(tiny_pipe.dit))


def test_cfg_merge_is_refused(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    with pytest.raises(ValueError, match="cfg_merge"):
        tiny_pipe(**GEN, lynx_id_embeds=EMB, cfg_merge=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_runs_and_tracks_float32(tiny_wan_dir, dtype):
    from lynx_ext.tiny.wan import load_tiny_pipe

    outs = {}
    for dt in (torch.float32, dtype):
        pipe = load_tiny_pipe(tiny_wan_dir, torch_dtype=dt)
        install(pipe, random_adapters(pipe.dit))
        with torch.no_grad():
            outs[dt] = pipe.model_fn(dit=pipe.dit, lynx=pipe.lynx, latents=torch.randn(
                1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0)).to(dt), timestep=torch.tensor([500.0], dtype=dt),
                context=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)).to(dt),
                lynx_id_tokens=pipe.lynx.encode_identity(EMB.to(dt)),
                lynx_ref_features={i: torch.randn(1, 4, pipe.dit.dim, generator=torch.Generator().manual_seed(i)).to(dt)
                                   for i in range(len(pipe.dit.blocks))})
    low, ref = outs[dtype].float(), outs[torch.float32]
    assert torch.isfinite(low).all()
    assert (low - ref).norm() / ref.norm() < 0.05


def test_three_branch_guidance_runs_three_forwards(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    calls = []
    inst = installation(tiny_pipe)
    inner = inst.host_model_fn

    def counting(**kw):
        if float(kw["timestep"].flatten()[0]) != 0:  # not the reference pass (t = 0)
            calls.append(kw["context"].shape)
        return inner(**kw)

    inst.host_model_fn = counting
    tiny_pipe(**dict(GEN, num_inference_steps=1), lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe),
              cfg_scale=5.0, cfg_scale_i=2.0)
    assert len(calls) == 3
    calls.clear()
    tiny_pipe(**dict(GEN, num_inference_steps=1), lynx_id_embeds=EMB, lynx_ref_latents=ref_latents(tiny_pipe),
              cfg_scale=1.0)
    assert len(calls) == 1


def test_deep_copied_blocks_share_the_adapters(tiny_pipe):
    """DiffSynth's VRAM manager deep-copies blocks that run over the VRAM limit; the copy must use our adapters."""
    import copy

    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    block = copy.deepcopy(tiny_pipe.dit.blocks[0])
    handle = block.self_attn.forward.keywords["handle"]
    assert handle.adapters is tiny_pipe.lynx
    assert block.self_attn.forward.args[0] is block.self_attn  # bound to the copy, not the original
    sink = {}
    installation(tiny_pipe).handle.bind(LynxForwardInputs(id_scale=1.0, ref_scale=1.0, capture=sink))
    x = torch.randn(1, 4, tiny_pipe.dit.dim)
    freqs = torch.ones(4, 1, tiny_pipe.dit.dim // tiny_pipe.dit.blocks[0].self_attn.num_heads // 2, dtype=torch.complex128)
    block.self_attn(x, freqs)
    assert 0 in sink
