"""The pipeline's wiring, observed at the modules: what every guidance branch receives (text, identity tokens,
reference features), the step window on both branches, the block selection.

Parity pins the model; these tests pin what the pipeline hands it (lynx_spec.md §2.5, §2.8). Each label below is
recomputed independently: the texts through the host's prompt encoder, the identity tokens through the resampler,
the reference features from the reference passes identified by their input latent.
"""
from __future__ import annotations

import pytest
import torch
from conftest import GEN, random_adapters
from wiring_probes import REF_PROMPT, WiringProbe, embedded_text, face_image, official_reference_latent, which, \
    which_everywhere

from lynx_ext.pipeline import install, set_scales

EMB = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)
G, GI = 5.0, 2.0


def expected_tokens(pipe) -> dict:
    """The conditional identity tokens and the Resampler(zero-embedding) tokens."""
    with torch.no_grad():
        return {"cond": pipe.lynx.resampler(EMB), "zero": pipe.lynx.resampler(torch.zeros_like(EMB))}


def id_label(record, tokens) -> str:
    """Which identity tokens every ID layer of this forward received (registers, appended after them, ignored)."""
    n = tokens["cond"].shape[1]
    return which_everywhere({b: t[:, :n] for b, t in record.id_tokens.items()},
                            {k: {b: v for b in record.id_tokens} for k, v in tokens.items()})


def reference_features(probe, pipe, image, seed) -> dict:
    """``{"face"|"grey": {block: features}}`` from the reference passes, each identified by its input latent."""
    latents = {"face": official_reference_latent(pipe.vae, image, seed + 1),
               "grey": official_reference_latent(pipe.vae, image, seed + 1, drop=True)}
    prompt = embedded_text(pipe, REF_PROMPT)
    features = {}
    for rec in probe.outside():
        assert rec.is_reference_pass(pipe.dit), "a forward outside the denoising loop that is not at t = 0"
        assert rec.adapter_blocks == (set(), set()), "an adapter branch ran during the reference pass"
        assert which_everywhere(rec.text, {"ref": {b: prompt for b in rec.text}}) == "ref"
        features[which(rec.latents[0], latents)] = rec.attn_inputs
    assert set(features) == {"face", "grey"}, f"reference passes over {sorted(features)}"
    return features


def check_combination(step, pipe, labels: dict, combine) -> None:
    """The prediction handed back to the host's loop is the official combination of the labelled branches."""
    lat = step.records[0].latents[0]
    p = pipe.dit.patch_size
    grid = (lat.shape[2] // p[0], lat.shape[3] // p[1], lat.shape[4] // p[2])
    out = {labels[i]: rec.output for i, rec in enumerate(step.records)}
    expected = pipe.dit.unpatchify(combine(out), grid)
    err = float((step.prediction.float() - expected.float()).abs().max())
    assert err < 1e-5 * max(1.0, float(expected.abs().max())), f"not the official guidance combination (max err {err})"


def test_full_three_branch_guidance_inputs(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, "full"))
    image = face_image()
    with WiringProbe(tiny_pipe) as probe:
        tiny_pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_image=image, cfg_scale=G, cfg_scale_i=GI)
    texts = {"prompt": embedded_text(tiny_pipe, GEN["prompt"]),
             "negative": embedded_text(tiny_pipe, GEN["negative_prompt"])}
    tokens = expected_tokens(tiny_pipe)
    features = reference_features(probe, tiny_pipe, image, GEN["seed"])
    all_blocks = set(range(len(tiny_pipe.dit.blocks)))
    assert len(probe.steps) == GEN["num_inference_steps"]
    for step in probe.steps:
        assert len(step.records) == 3, "full guidance runs three DiT forwards per step"
        labels = []
        for rec in step.records:
            assert torch.equal(rec.latents[0], step.records[0].latents[0]), "branches see different latents"
            assert torch.equal(rec.time_inputs[0], step.records[0].time_inputs[0]), "branches see different t"
            assert rec.adapter_blocks == (all_blocks, all_blocks)
            text = which_everywhere(rec.text, {k: {b: v for b in rec.text} for k, v in texts.items()})
            labels.append((text, id_label(rec, tokens), which_everywhere(rec.ref_features, features)))
        # cond: prompt + face tokens + face features; uncond: negative + Resampler(0) + grey features;
        # i: negative + the *conditional* tokens and features.
        assert sorted(labels) == sorted([("prompt", "cond", "face"), ("negative", "zero", "grey"),
                                         ("negative", "cond", "face")]), labels
        names = {("prompt", "cond", "face"): "cond", ("negative", "zero", "grey"): "uncond",
                 ("negative", "cond", "face"): "i"}
        check_combination(step, tiny_pipe, [names[x] for x in labels],
                          lambda o: o["uncond"] + GI * (o["i"] - o["uncond"]) + G * (o["cond"] - o["i"]))


def test_lite_two_branch_guidance_inputs(tiny_pipe):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, "lite"))
    with WiringProbe(tiny_pipe) as probe:
        tiny_pipe(**GEN, lynx_id_embeds=EMB, cfg_scale=G)
    texts = {"prompt": embedded_text(tiny_pipe, GEN["prompt"]),
             "negative": embedded_text(tiny_pipe, GEN["negative_prompt"])}
    tokens = expected_tokens(tiny_pipe)
    id_blocks = {int(b) for b in tiny_pipe.lynx.id_layers}
    assert id_blocks == {0, 2} and not probe.outside(), "lite: ID layers on even blocks, no reference pass"
    assert len(probe.steps) == GEN["num_inference_steps"]
    for step in probe.steps:
        assert len(step.records) == 2, "lite guidance runs two DiT forwards per step"
        labels = []
        for rec in step.records:
            assert rec.adapter_blocks == (id_blocks, set())
            text = which_everywhere(rec.text, {k: {b: v for b in rec.text} for k, v in texts.items()})
            labels.append((text, id_label(rec, tokens)))
        assert sorted(labels) == [("negative", "zero"), ("prompt", "cond")], labels
        names = {("prompt", "cond"): "cond", ("negative", "zero"): "uncond"}
        check_combination(step, tiny_pipe, [names[x] for x in labels],
                          lambda o: o["uncond"] + G * (o["cond"] - o["uncond"]))


@pytest.mark.parametrize("window", [(0.5, 1.0), (0.0, 0.5)])
def test_step_window_applies_to_both_branches(tiny_pipe, window):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, "full"))
    with WiringProbe(tiny_pipe, keep_attn_inputs=False) as probe:
        tiny_pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_image=face_image(), cfg_scale=G, cfg_scale_i=GI,
                  lynx_step_window=window)
    n = GEN["num_inference_steps"]
    all_blocks = set(range(len(tiny_pipe.dit.blocks)))
    assert len(probe.steps) == n
    for step in probe.steps:
        inside = window[0] <= step.index / n < window[1]
        want = (all_blocks, all_blocks) if inside else (set(), set())
        for rec in step.records:
            assert rec.adapter_blocks == want, (step.index, window, rec.adapter_blocks)


@pytest.mark.parametrize("variant,blocks,how", [("full", [1], "call"), ("full", [0, 3], "set_scales"),
                                                ("lite", [2], "call")])
def test_block_selection_runs_exactly_the_chosen_blocks(tiny_pipe, variant, blocks, how):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, variant))
    kw = dict(GEN, lynx_id_embeds=EMB, cfg_scale=G)
    if variant == "full":
        kw.update(lynx_ref_image=face_image(), cfg_scale_i=GI)
    everywhere = tiny_pipe(**kw)
    off = tiny_pipe(**kw, lynx_id_scale=0.0, lynx_ref_scale=0.0)
    if how == "set_scales":
        set_scales(tiny_pipe, blocks=blocks)
    with WiringProbe(tiny_pipe, keep_attn_inputs=False) as probe:
        selected = tiny_pipe(**kw, lynx_blocks=blocks) if how == "call" else tiny_pipe(**kw)
    want_ref = set(blocks) if variant == "full" else set()
    assert probe.steps
    for step in probe.steps:
        for rec in step.records:
            assert rec.adapter_blocks == (set(blocks), want_ref), rec.adapter_blocks
    assert (selected - everywhere).abs().max() > 1e-4, "a block selection changed nothing"
    assert (selected - off).abs().max() > 1e-4, "the chosen blocks had no effect"
