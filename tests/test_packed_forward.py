"""The training forward (`lynx_ext.training.packed_forward`) equals the host's model function on unpacked inputs."""
from __future__ import annotations

import torch
from conftest import GEN, random_adapters
from diffsynth.pipelines.wan_video import model_fn_wan_video

from lynx_ext.pipeline import capture_reference_features, install, installation, set_scales
from lynx_ext.training.packed_forward import packed_forward


def _inputs(pipe, seed=0, frames=2, h=4, w=6, text=5):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randn(1, 16, frames, h, w, generator=g)
    ctx = torch.randn(1, text, 32, generator=g)
    ref = torch.randn(1, 16, 1, 4, 4, generator=g)
    tokens = pipe.lynx.encode_identity(torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1))
    return lat, ctx, ref, tokens.detach()


def test_plain_packed_forward_is_the_host_forward(tiny_pipe):
    g = torch.Generator().manual_seed(0)
    lat, ctx = torch.randn(1, 16, 2, 4, 6, generator=g), torch.randn(1, 5, 32, generator=g)
    t = torch.tensor([640.0])
    with torch.no_grad():
        host = model_fn_wan_video(dit=tiny_pipe.dit, latents=lat, timestep=t, context=ctx)
        install(tiny_pipe, random_adapters(tiny_pipe.dit))
        (ours,) = packed_forward(tiny_pipe, [lat], t, [ctx])
    assert torch.allclose(ours, host, atol=1e-5, rtol=0)


def test_packed_forward_with_both_branches_is_the_host_model_fn(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    lat, ctx, ref, tokens = _inputs(tiny_pipe)
    ref_text = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(9))
    t = torch.tensor([640.0])
    with torch.no_grad():
        feats_host = capture_reference_features(tiny_pipe, ref, ref_text)
        feats_packed, lens = packed_forward(tiny_pipe, [ref], torch.zeros(1), [ref_text], capture=True)
        assert lens == [ref.shape[-1] * ref.shape[-2] // 4]
        for block, feat in feats_host.items():
            assert torch.allclose(feats_packed[block], feat, atol=1e-5, rtol=0)
        for id_scale, ref_scale in ((1.0, 1.0), (0.7, 1.3), (0.0, 1.0), (1.0, 0.0)):
            host = tiny_pipe.model_fn(dit=tiny_pipe.dit, lynx=tiny_pipe.lynx, latents=lat, timestep=t, context=ctx,
                                      lynx_id_tokens=tokens, lynx_ref_features=feats_host,
                                      lynx_id_scale=id_scale, lynx_ref_scale=ref_scale)
            (ours,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens], ref_features=feats_packed,
                                     ref_lens=lens, id_scale=id_scale, ref_scale=ref_scale)
            assert torch.allclose(ours, host, atol=1e-5, rtol=0), (id_scale, ref_scale)
        (plain,) = packed_forward(tiny_pipe, [lat], t, [ctx])
        assert (ours - plain).abs().max() > 1e-3  # the branches really act


def test_a_pack_of_equal_and_unequal_samples_is_each_sample_alone(tiny_pipe):
    """Segments of one shape run as one attention batch; each sample's prediction must still be its own."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    shapes = [(2, 4, 6, 5), (1, 4, 4, 5), (2, 4, 6, 7), (2, 4, 6, 5), (1, 4, 4, 5)]  # frames, h, w, text tokens
    samples = [_inputs(tiny_pipe, seed=i, frames=f, h=h, w=w, text=n) for i, (f, h, w, n) in enumerate(shapes)]
    refs = [s[2] for s in samples]
    ref_text = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(9))
    t = torch.tensor([900.0, 640.0, 500.0, 120.0, 10.0])
    with torch.no_grad():
        feats, lens = packed_forward(tiny_pipe, refs, torch.zeros(len(refs)), [ref_text] * len(refs), capture=True)
        preds = packed_forward(tiny_pipe, [s[0] for s in samples], t, [s[1] for s in samples],
                               id_tokens=[s[3] for s in samples], ref_features=feats, ref_lens=lens)
        for i, (lat, ctx, ref, tokens) in enumerate(samples):
            alone = capture_reference_features(tiny_pipe, ref, ref_text)
            host = tiny_pipe.model_fn(dit=tiny_pipe.dit, lynx=tiny_pipe.lynx, latents=lat, timestep=t[i:i + 1],
                                      context=ctx, lynx_id_tokens=tokens, lynx_ref_features=alone)
            assert torch.allclose(preds[i], host, atol=1e-5, rtol=0), i


def test_packed_gradients_equal_the_host_model_fn_gradients(tiny_pipe):
    """What training optimises through the packed forward is what the host road would optimise (with checkpointing)."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    lat, ctx, ref, _ = _inputs(tiny_pipe)
    embed = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(3)), dim=-1)
    t = torch.tensor([400.0])
    with torch.no_grad():
        feats = capture_reference_features(tiny_pipe, ref, ctx)
    lens = [next(iter(feats.values())).shape[1]]
    params = [p for p in tiny_pipe.lynx.parameters()]

    def grads(run):
        tiny_pipe.lynx.zero_grad(set_to_none=True)
        tiny_pipe.lynx.requires_grad_(True)
        run().pow(2).mean().backward()
        return [None if p.grad is None else p.grad.clone() for p in params]

    host = grads(lambda: tiny_pipe.model_fn(dit=tiny_pipe.dit, lynx=tiny_pipe.lynx, latents=lat, timestep=t,
                                            context=ctx, lynx_id_tokens=tiny_pipe.lynx.encode_identity(embed),
                                            lynx_ref_features=feats))
    packed = grads(lambda: packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tiny_pipe.lynx.encode_identity(embed)],
                                          ref_features=feats, ref_lens=lens, use_gradient_checkpointing=True)[0])
    assert sum(g is not None for g in host) > 0
    for a, b in zip(host, packed):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_training_forward_after_inference_with_a_block_selection_uses_all_blocks(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    lat, ctx, ref, tokens = _inputs(tiny_pipe)
    t = torch.tensor([640.0])
    with torch.no_grad():
        (before,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens])
        emb = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
        tiny_pipe(**dict(GEN, num_inference_steps=2), lynx_id_embeds=emb, lynx_ref_latents=torch.randn(1, 16, 1, 4, 4),
                  lynx_blocks=[0], lynx_step_window=(0.0, 0.5), lynx_id_scale=0.3)
        ran = []
        hooks = [layer.to_k_ip.register_forward_hook(lambda m, i, o, b=b: ran.append(b))
                 for b, layer in tiny_pipe.lynx.id_layers.items()]
        (after,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens])
        for h in hooks:
            h.remove()
    assert sorted(ran, key=int) == sorted(tiny_pipe.lynx.id_layers.keys(), key=int)
    assert torch.equal(before, after)


def test_packed_forward_follows_the_installed_settings(tiny_pipe):
    """``None`` scales and blocks mean the installed values (`set_scales`), as for inference."""
    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    lat, ctx, _, tokens = _inputs(tiny_pipe)
    t = torch.tensor([640.0])
    with torch.no_grad():
        (explicit,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens], id_scale=0.25)
        set_scales(tiny_pipe, id_scale=0.25)
        (installed,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens])
        assert torch.equal(explicit, installed)
        set_scales(tiny_pipe, blocks=[1])
        assert installation(tiny_pipe).settings.blocks == (1,)
        (one_block,) = packed_forward(tiny_pipe, [lat], t, [ctx], id_tokens=[tokens])
    assert not torch.equal(one_block, installed)
