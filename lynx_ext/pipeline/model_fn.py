"""`model_fn_lynx`: wraps the host's ``pipe.model_fn`` to hand the branches their inputs and run Lynx guidance.

Both `WanVideoPipeline.__call__` and DiffSynth's `FlowMatchSFTLoss` call ``pipe.model_fn``; every forward of
an installed pipeline therefore goes through here, and each forward binds a complete, freshly built
`LynxForwardInputs` (nothing carries over from an earlier call).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..adapters.compute import EXACT, compute_options
from ..adapters.forward_inputs import BRANCHES_OFF
from .fast_modes import FastModeRun
from .forward_inputs import step_fraction
from .guidance import LynxGuidance, combine_guidance


def model_fn_lynx(
    lynx=None,
    lynx_id_tokens: Optional[torch.Tensor] = None,
    lynx_ref_features: Optional[dict] = None,
    lynx_id_scale: Optional[float] = None,
    lynx_ref_scale: Optional[float] = None,
    lynx_guidance: Optional[LynxGuidance] = None,
    lynx_step_window: Optional[Sequence[float]] = None,
    lynx_timesteps: Optional[torch.Tensor] = None,
    lynx_blocks: Optional[Sequence[int]] = None,
    lynx_fast: Optional[FastModeRun] = None,
    timestep: Optional[torch.Tensor] = None,
    context: Optional[torch.Tensor] = None,
    *,
    _installation,
    **kwargs,
):
    """Run the host model function once (no guidance) or once per guidance branch, each with its own inputs.

    ``None`` scales, window and block selection mean the installed values (`set_scales`). ``lynx_fast`` (the
    generation's `FastModeRun`) sets how the forwards compute and may skip blocks or whole guidance branches.
    """
    inst = _installation
    host = inst.host_model_fn
    if lynx is None:  # a caller that does not hand the adapters in: the DiT runs as the host's
        inst.handle.bind(BRANCHES_OFF)
        return host(timestep=timestep, context=context, **kwargs)
    fraction = step_fraction(timestep, lynx_timesteps)
    run = lynx_fast
    if run is not None:
        total = 0 if lynx_timesteps is None else len(lynx_timesteps)
        run.begin_step(kwargs.get("dit"), None if fraction is None else round(fraction * total), total)

    def branch(name, ctx, id_tokens, ref_features):
        inputs = inst.forward_inputs(
            id_tokens=id_tokens, ref_features=ref_features, id_scale=lynx_id_scale, ref_scale=lynx_ref_scale,
            blocks=lynx_blocks, step_window=lynx_step_window, fraction=fraction)
        inst.handle.bind(inputs)
        extra = {} if run is None else run.host_kwargs(name, inputs.active)
        return host(timestep=timestep, context=ctx, **{**kwargs, **extra})

    with compute_options(EXACT if run is None else run.compute):
        cond = branch("cond", context, lynx_id_tokens, lynx_ref_features)
        if lynx_guidance is not None and lynx_guidance.enabled:
            g = lynx_guidance
            active = inst.handle.inputs.active

            def guided(name, run_branch):
                return run_branch() if run is None else run.guided(name, cond, active, run_branch)

            uncond = guided("uncond", lambda: branch("uncond", g.context_nega, g.id_tokens_nega, g.ref_features_nega))
            identity = None
            if g.cfg_scale_i is not None:
                identity = guided("identity", lambda: branch("identity", g.context_nega, lynx_id_tokens,
                                                             lynx_ref_features))
            cond = combine_guidance(cond, uncond, g.cfg_scale, identity, g.cfg_scale_i)
    if not torch.is_grad_enabled():  # with autograd the inputs stay bound for checkpointed recomputation
        inst.handle.bind(BRANCHES_OFF)
    return cond
