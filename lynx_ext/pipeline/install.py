"""`install` / `set_scales` / `uninstall`: put Lynx into a DiffSynth `WanVideoPipeline` and take it out again.

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
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from torch import nn

from ..adapters.handle import AdapterHandle
from ..adapters.id_attention import id_cross_attention_forward
from ..adapters.loading import check_fits, dit_shape
from ..adapters.lynx_adapters import LynxAdapters
from ..adapters.ref_attention import ref_self_attention_forward
from .lynx_pipeline import lynx_pipeline_class
from .model_fn import model_fn_lynx
from .units import lynx_units

_MISSING = object()


class LynxInstallError(RuntimeError):
    """The pipeline cannot take the Lynx extension (or already has it)."""


@dataclass
class InstallRecord:
    """What `uninstall` needs to restore the pipeline exactly."""

    handle: AdapterHandle
    original_class: type
    original_model_fn: Callable
    inner_model_fn: Callable
    original_in_iteration_models: tuple
    original_in_iteration_models_2: Any
    units: list
    overridden: list = field(default_factory=list)  # (module, previous __dict__ forward or _MISSING)
    defaults: dict = field(default_factory=dict)


def _dits(pipe) -> list[nn.Module]:
    return [d for d in (getattr(pipe, "dit", None), getattr(pipe, "dit2", None)) if d is not None]


def _check_pipe(pipe, adapters: LynxAdapters) -> None:
    if getattr(pipe, "_lynx_install", None) is not None:
        raise LynxInstallError("Lynx is already installed on this pipeline; call uninstall(pipe) first.")
    if getattr(pipe, "dit", None) is None:
        raise LynxInstallError("The pipeline has no DiT (pipe.dit is None); load a Wan2.1 DiT first.")
    if getattr(pipe, "use_unified_sequence_parallel", False):
        raise LynxInstallError(
            "This pipeline uses unified sequence parallel (USP), which replaces the self-attention forwards "
            "Lynx needs. Build the pipeline without use_usp, or use lynx_ext's multi-GPU inference."
        )
    for dit in _dits(pipe):
        if not hasattr(dit, "blocks") or not all(hasattr(b, "self_attn") and hasattr(b, "cross_attn") for b in dit.blocks):
            raise LynxInstallError(f"{type(dit).__name__} is not a Wan DiT with self/cross-attention blocks.")
        dim, n = dit_shape(dit)
        check_fits(adapters.config, dim, n, "adapters")


def install(
    pipe,
    adapters: LynxAdapters,
    id_scale: float = 1.0,
    ref_scale: float = 1.0,
    blocks: Optional[Sequence[int]] = None,
    face_embedder: Any = None,
):
    """Install Lynx into ``pipe`` (a DiffSynth `WanVideoPipeline`). Returns the pipe.

    Args:
        adapters: `LynxAdapters` for this DiT (see `load_lynx_adapters`).
        id_scale: default ID-branch scale (overridable per call).
        ref_scale: default Ref-branch scale (overridable per call).
        blocks: restrict both branches to these block indices (default: every adapted block).
        face_embedder: optional face analyzer (see `lynx_ext.conditioners`) used when a face *image* is given.
    """
    _check_pipe(pipe, adapters)
    adapters = adapters.to(device=pipe.device, dtype=pipe.torch_dtype)
    handle = AdapterHandle(adapters)
    inner = pipe.model_fn
    record = InstallRecord(
        handle=handle,
        original_class=pipe.__class__,
        original_model_fn=inner,
        inner_model_fn=inner,
        original_in_iteration_models=pipe.in_iteration_models,
        original_in_iteration_models_2=getattr(pipe, "in_iteration_models_2", _MISSING),
        units=lynx_units(),
        defaults={"id_scale": float(id_scale), "ref_scale": float(ref_scale),
                  "blocks": None if blocks is None else [int(b) for b in blocks]},
    )
    for dit in _dits(pipe):
        for index, block in enumerate(dit.blocks):
            for module, fn in ((block.self_attn, ref_self_attention_forward), (block.cross_attn, id_cross_attention_forward)):
                previous = module.__dict__.get("forward", _MISSING)
                record.overridden.append((module, previous))
                forward = functools.partial(fn, module, handle=handle, block=index)
                forward.lynx_override = True
                module.forward = forward
    pipe.lynx = adapters
    pipe.in_iteration_models = tuple(pipe.in_iteration_models) + ("lynx",)
    if record.original_in_iteration_models_2 is not _MISSING:
        pipe.in_iteration_models_2 = tuple(pipe.in_iteration_models_2) + ("lynx",)
    pipe.__dict__["lynx_face"] = face_embedder  # never registered as a child module
    position = _unit_position(pipe)
    pipe.units[position:position] = record.units
    pipe.model_fn = functools.partial(model_fn_lynx, _inner=inner, _defaults=record.defaults)
    pipe._lynx_install = record
    pipe.__class__ = lynx_pipeline_class(pipe.__class__)
    return pipe


def _unit_position(pipe) -> int:
    for i, unit in enumerate(pipe.units):
        if type(unit).__name__ == "WanVideoUnit_PromptEmbedder":
            return i + 1
    return len(pipe.units)


def set_scales(pipe, id_scale: Optional[float] = None, ref_scale: Optional[float] = None,
               blocks: Optional[Sequence[int]] | object = _MISSING) -> None:
    """Change the default branch scales (and block selection) of an installed pipeline."""
    record = _record(pipe)
    if id_scale is not None:
        record.defaults["id_scale"] = float(id_scale)
    if ref_scale is not None:
        record.defaults["ref_scale"] = float(ref_scale)
    if blocks is not _MISSING:
        record.defaults["blocks"] = None if blocks is None else [int(b) for b in blocks]


def replace_adapters(pipe, adapters: LynxAdapters) -> None:
    """Swap in other adapter weights without reinstalling (e.g. a new training export)."""
    record = _record(pipe)
    for dit in _dits(pipe):
        check_fits(adapters.config, *dit_shape(dit), "adapters")
    adapters = adapters.to(device=pipe.device, dtype=pipe.torch_dtype)
    record.handle.adapters = adapters
    pipe.lynx = adapters


def uninstall(pipe):
    """Restore the pipeline exactly as it was before `install`. Returns the pipe."""
    record = _record(pipe)
    for module, previous in reversed(record.overridden):
        if previous is _MISSING:
            module.__dict__.pop("forward", None)
        else:
            module.__dict__["forward"] = previous
    pipe.units[:] = [u for u in pipe.units if all(u is not v for v in record.units)]
    pipe.model_fn = record.original_model_fn
    pipe.in_iteration_models = record.original_in_iteration_models
    if record.original_in_iteration_models_2 is not _MISSING:
        pipe.in_iteration_models_2 = record.original_in_iteration_models_2
    if "lynx" in pipe._modules:
        del pipe._modules["lynx"]
    for attr in ("lynx_face", "_lynx_call"):
        pipe.__dict__.pop(attr, None)
    pipe.__class__ = record.original_class
    record.handle.adapters = None
    del pipe._lynx_install
    return pipe


def _record(pipe) -> InstallRecord:
    record = getattr(pipe, "_lynx_install", None)
    if record is None:
        raise LynxInstallError("Lynx is not installed on this pipeline.")
    return record


def is_installed(pipe) -> bool:
    return getattr(pipe, "_lynx_install", None) is not None
