"""The official sampler (UniPC, flow sigmas) against diffusers 0.33.1, the version the official code pins."""
from __future__ import annotations

import pytest
import torch
from conftest import GEN

from lynx_ext.pipeline.samplers import UniPCFlowScheduler, use_sampler


@pytest.mark.parametrize("steps,shift", [(10, 3.0), (50, 5.0), (4, 3.0)])
def test_unipc_matches_diffusers_reference(steps, shift):
    diffusers = pytest.importorskip("diffusers.schedulers.scheduling_unipc_multistep")
    ref = diffusers.UniPCMultistepScheduler(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction",
                                            use_flow_sigmas=True, flow_shift=shift, predict_x0=True, solver_type="bh2",
                                            lower_order_final=True)
    ref.set_timesteps(steps)
    ours = UniPCFlowScheduler()
    ours.set_timesteps(steps, shift=shift)
    assert torch.equal(ref.timesteps, ours.timesteps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 2, 3, 3, generator=g)
    y = x.clone()
    for i, t in enumerate(ref.timesteps):
        out = torch.randn(x.shape, generator=g) + 0.3 * x
        x = ref.step(out.clone(), t, x).prev_sample
        y = ours.step(out.clone(), ours.timesteps[i], y)
    assert (x - y).abs().max() < 1e-5


def test_unipc_inside_the_host_pipeline(tiny_pipe):
    euler = tiny_pipe(**GEN)
    from lynx_ext.pipeline import install
    from conftest import random_adapters

    install(tiny_pipe, random_adapters(tiny_pipe.dit))
    unipc = tiny_pipe(**GEN, sampler="unipc", sigma_shift=3.0)
    assert torch.isfinite(unipc).all() and not torch.equal(unipc, euler)
    assert type(tiny_pipe.scheduler).__name__ == "FlowMatchScheduler"  # restored after the call
    with pytest.raises(ValueError, match="Unknown sampler"):
        with use_sampler(tiny_pipe, "ddim"):
            pass
