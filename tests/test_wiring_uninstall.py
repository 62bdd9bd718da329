"""``uninstall`` restores the pipeline exactly as it was: the same ``model_fn`` object, units, class, scheduler,
attention forwards (including one another extension set per instance before Lynx came), weights and outputs."""
from __future__ import annotations

import torch
from conftest import GEN, random_adapters
from wiring_probes import face_image

from lynx_ext.pipeline import install, uninstall

EMB = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)


def snapshot(pipe) -> dict:
    return {
        "class": type(pipe),
        "model_fn": pipe.model_fn,
        "units": list(pipe.units),
        "scheduler": pipe.scheduler,
        "in_iteration_models": pipe.in_iteration_models,
        "attributes": sorted(pipe.__dict__),
        "children": list(pipe._modules),
        "forwards": {name: m.__dict__.get("forward") for name, m in pipe.dit.named_modules()},
        "weights": {k: v.clone() for k, v in pipe.dit.state_dict().items()},
    }


def test_uninstall_restores_the_pipeline_exactly(tiny_pipe):
    pipe = tiny_pipe
    calls = []
    attn = pipe.dit.blocks[1].cross_attn
    class_forward = type(attn).forward

    def earlier_forward(x, y):  # another extension's per-instance forward, there before Lynx
        calls.append(1)
        return class_forward(attn, x, y)

    attn.forward = earlier_forward
    base = pipe(**GEN)
    assert calls
    before = snapshot(pipe)
    install(pipe, random_adapters(pipe.dit))
    lynx = pipe(**GEN, lynx_id_embeds=EMB, lynx_ref_image=face_image(), cfg_scale=5.0, cfg_scale_i=2.0,
                sampler="unipc")
    assert (lynx - base).abs().max() > 1e-3
    uninstall(pipe)
    after = snapshot(pipe)
    for key in ("class", "model_fn", "scheduler"):
        assert after[key] is before[key], f"{key} is not the one from before install: {after[key]!r}"
    assert len(after["units"]) == len(before["units"]) and all(a is b for a, b in zip(after["units"], before["units"]))
    assert after["in_iteration_models"] == before["in_iteration_models"]
    assert after["attributes"] == before["attributes"] and after["children"] == before["children"]
    changed = [n for n, f in after["forwards"].items() if f is not before["forwards"][n]]
    assert not changed, f"attention forwards not restored: {changed[:4]}"
    assert attn.forward is earlier_forward
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    calls.clear()
    assert torch.equal(pipe(**GEN), base)
    assert calls, "the earlier per-instance forward no longer runs"
