"""`install` / `set_scales` / `replace_adapters` / `uninstall`: put Lynx into a DiffSynth `WanVideoPipeline` and
take it out again.

What install changes, all reversible:
- ``pipe.lynx`` = the adapters (a named child, so VRAM management, ``freeze_except("lynx")`` and
  ``trainable_models="lynx"`` see it) and ``"lynx"`` appended to ``pipe.in_iteration_models``;
- every block's ``self_attn.forward`` / ``cross_attn.forward`` replaced *per instance* (parameter paths,
  ``dit.state_dict()``, LoRA matching and VRAM maps unchanged);
- the Lynx units inserted after the prompt embedder; ``pipe.model_fn`` wrapped by `model_fn_lynx`;
- ``pipe.__class__`` switched to a thin subclass whose ``__call__`` accepts the Lynx arguments.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

from torch import nn

from ..adapters.attention import id_cross_attention_forward, ref_self_attention_forward
from ..adapters.handle import AdapterHandle
from ..adapters.formats.loader import check_fits, dit_shape
from ..adapters.lynx_adapters import LynxAdapters
from ..models.presets import VARIANTS
from .installation import _ATTR, MISSING, LynxInstallation, LynxInstallError, installation, is_installed
from .lynx_pipeline import lynx_pipeline_class
from .model_fn import model_fn_lynx
from .settings import LynxSettings, _UNSET, normalise_blocks, normalise_window
from .units import lynx_units

__all__ = ["install", "set_scales", "replace_adapters", "uninstall", "installation", "is_installed",
           "LynxInstallError"]


def _dits(pipe) -> list[nn.Module]:
    return [d for d in (getattr(pipe, "dit", None), getattr(pipe, "dit2", None)) if d is not None]


def _check_pipe(pipe, adapters: LynxAdapters) -> None:
    if is_installed(pipe):
        raise LynxInstallError("Lynx is already installed on this pipeline; call uninstall(pipe) first.")
    if getattr(pipe, "dit", None) is None:
        raise LynxInstallError("The pipeline has no DiT (pipe.dit is None); load a Wan2.1 DiT first.")
    if getattr(pipe, "use_unified_sequence_parallel", False):
        raise LynxInstallError(
            "This pipeline uses unified sequence parallel (USP), which replaces the self-attention forwards "
            "Lynx needs. Build the pipeline without use_usp (Lynx runs on one GPU per generation)."
        )
    for dit in _dits(pipe):
        if not hasattr(dit, "blocks") or not all(hasattr(b, "self_attn") and hasattr(b, "cross_attn") for b in dit.blocks):
            raise LynxInstallError(f"{type(dit).__name__} is not a Wan DiT with self/cross-attention blocks.")
        dim, n = dit_shape(dit)
        check_fits(adapters.config, dim, n, "adapters")


def install(
    pipe,
    adapters: LynxAdapters,
    id_scale: Optional[float] = None,
    ref_scale: Optional[float] = None,
    blocks: Optional[Sequence[int]] = None,
    step_window: Optional[Sequence[float]] = None,
    face_analyzer: Any = None,
):
    """Install Lynx into ``pipe`` (a DiffSynth `WanVideoPipeline`). Returns the pipe.

    Args:
        adapters: `LynxAdapters` for this DiT (see `load_lynx_adapters`).
        id_scale: installed ID-branch scale (default: the variant's official value); a call that passes
            ``None`` uses it, and `set_scales` changes it.
        ref_scale: installed Ref-branch scale, likewise.
        blocks: restrict both branches to these block indices (default: every adapted block).
        step_window: ``(start, end)`` fractions of the denoising steps where the adapters act (default: all).
        face_analyzer: a `FaceAnalyzer` used when the pipeline is given a face *image* (``lynx_id_image``).
    """
    _check_pipe(pipe, adapters)
    variant = VARIANTS[adapters.config.variant]
    settings = LynxSettings(
        id_scale=variant.id_scale if id_scale is None else float(id_scale),
        ref_scale=variant.ref_scale if ref_scale is None else float(ref_scale),
        blocks=normalise_blocks(blocks), step_window=normalise_window(step_window),
    )
    inst = LynxInstallation(
        handle=AdapterHandle(adapters.to(device=pipe.device, dtype=pipe.torch_dtype)),
        settings=settings,
        host_model_fn=pipe.model_fn,
        num_blocks=dit_shape(pipe.dit)[1],
        face_analyzer=face_analyzer,
        original_class=pipe.__class__,
        original_in_iteration_models=pipe.in_iteration_models,
        original_in_iteration_models_2=getattr(pipe, "in_iteration_models_2", MISSING),
        units=lynx_units(),
    )
    inst.forward_inputs(blocks=settings.blocks)  # validates the block selection against this DiT
    for dit in _dits(pipe):
        for index, block in enumerate(dit.blocks):
            for module, fn in ((block.self_attn, ref_self_attention_forward),
                               (block.cross_attn, id_cross_attention_forward)):
                inst.overridden.append((module, module.__dict__.get("forward", MISSING)))
                forward = functools.partial(fn, module, handle=inst.handle, block=index)
                forward.lynx_override = True
                module.forward = forward
    pipe.lynx = inst.handle.adapters
    pipe.in_iteration_models = tuple(pipe.in_iteration_models) + ("lynx",)
    if inst.original_in_iteration_models_2 is not MISSING:
        pipe.in_iteration_models_2 = tuple(pipe.in_iteration_models_2) + ("lynx",)
    position = _unit_position(pipe)
    pipe.units[position:position] = inst.units
    pipe.model_fn = functools.partial(model_fn_lynx, _installation=inst)
    pipe.__dict__[_ATTR] = inst
    pipe.__class__ = lynx_pipeline_class(pipe.__class__)
    return pipe


def _unit_position(pipe) -> int:
    for i, unit in enumerate(pipe.units):
        if type(unit).__name__ == "WanVideoUnit_PromptEmbedder":
            return i + 1
    return len(pipe.units)


def set_scales(pipe, id_scale: Optional[float] = None, ref_scale: Optional[float] = None,
               blocks: Optional[Sequence[int]] | object = _UNSET,
               step_window: Optional[Sequence[float]] | object = _UNSET) -> None:
    """Change the installed defaults: ``None`` scales keep theirs; ``blocks=None`` / ``step_window=None`` reset
    to every block / every step. Every later call that leaves these unset uses them (generation and training)."""
    inst = installation(pipe)
    new = inst.settings.updated(id_scale=id_scale, ref_scale=ref_scale, blocks=blocks, step_window=step_window)
    if new.blocks is not None:
        inst.forward_inputs(blocks=new.blocks)  # validates against this DiT
    inst.settings = new


def replace_adapters(pipe, adapters: LynxAdapters) -> None:
    """Swap in other adapter weights without reinstalling (e.g. a new training export)."""
    inst = installation(pipe)
    for dit in _dits(pipe):
        check_fits(adapters.config, *dit_shape(dit), "adapters")
    adapters = adapters.to(device=pipe.device, dtype=pipe.torch_dtype)
    inst.handle.adapters = adapters
    pipe.lynx = adapters


def uninstall(pipe):
    """Restore the pipeline exactly as it was before `install`. Returns the pipe."""
    inst = installation(pipe)
    for module, previous in reversed(inst.overridden):
        if previous is MISSING:
            module.__dict__.pop("forward", None)
        else:
            module.__dict__["forward"] = previous
    pipe.units[:] = [u for u in pipe.units if all(u is not v for v in inst.units)]
    pipe.model_fn = inst.host_model_fn
    pipe.in_iteration_models = inst.original_in_iteration_models
    if inst.original_in_iteration_models_2 is not MISSING:
        pipe.in_iteration_models_2 = inst.original_in_iteration_models_2
    if "lynx" in pipe._modules:
        del pipe._modules["lynx"]
    for attr in ("_lynx_call", "lynx_fast_stats"):  # per-call values the Lynx __call__ leaves for the caller
        pipe.__dict__.pop(attr, None)
    pipe.__class__ = inst.original_class
    inst.handle.adapters = None
    del pipe.__dict__[_ATTR]
    return pipe
