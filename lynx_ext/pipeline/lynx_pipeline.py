"""The thin pipeline subclass that gives ``pipe(...)`` the Lynx arguments.

DiffSynth's ``WanVideoPipeline.__call__`` has a fixed signature and two-branch CFG inline. With Lynx inputs,
``__call__`` stashes them for `LynxUnit_CallInputs`, hands the host ``cfg_scale=1`` (one ``model_fn`` call per
step) and `model_fn_lynx` runs the official two- or three-branch guidance itself. Without Lynx inputs the
call is the host's, unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..validation.generation import check_guidance_pair
from .fast_modes import start_run
from .units import DEFAULT_REF_PROMPT

_CLASSES: dict[type, type] = {}


class LynxPipelineMixin:
    """Mixed in front of the pipeline's own class by `install` (and removed by `uninstall`)."""

    def __call__(
        self,
        prompt: str = "",
        negative_prompt: str = "",
        *,
        lynx_id_image=None,
        lynx_id_embeds=None,
        lynx_id_tokens=None,
        lynx_ref_image=None,
        lynx_ref_latents=None,
        lynx_ref_features=None,
        lynx_ref_prompt: str = DEFAULT_REF_PROMPT,
        lynx_ref_seed: Optional[int] = None,
        lynx_id_scale: Optional[float] = None,
        lynx_ref_scale: Optional[float] = None,
        lynx_step_window: Optional[Sequence[float]] = None,
        lynx_blocks: Optional[Sequence[int]] = None,
        cfg_scale: float = 5.0,
        cfg_scale_i: Optional[float] = None,
        sampler: Optional[str] = None,
        lynx_fast=None,
        **kwargs,
    ):
        """Generate a video. Host arguments (``height``, ``num_frames``, ``seed``, ...) pass through unchanged.

        Lynx arguments: ``lynx_id_image`` (a face photo; needs a face embedder) or ``lynx_id_embeds``
        (``[1, 512]`` ArcFace) or ``lynx_id_tokens``; ``lynx_ref_image`` (the 256-px aligned crop) or
        ``lynx_ref_latents`` or ``lynx_ref_features`` (full only); scales; ``lynx_step_window=(start, end)``
        fractions of the steps where the adapters act; ``lynx_blocks`` block selection; ``cfg_scale`` (g) and
        ``cfg_scale_i`` (gi, full three-branch guidance); ``sampler`` ``"euler"`` (DiffSynth) or ``"unipc"``
        (the official sampler); ``lynx_fast`` a `FastOptions` (attention kernel, fused/float8 projections, step
        caching, guidance-branch reuse; default: the exact path).
        """
        lynx_inputs = (lynx_id_image, lynx_id_embeds, lynx_id_tokens, lynx_ref_image, lynx_ref_latents,
                       lynx_ref_features)
        with self._lynx_sampler(sampler):
            if all(x is None for x in lynx_inputs):
                if lynx_fast is not None and not lynx_fast.is_default:
                    raise ValueError("Fast modes (lynx_fast) act on Lynx generations; give a face or Lynx inputs.")
                return super().__call__(prompt=prompt, negative_prompt=negative_prompt, cfg_scale=cfg_scale, **kwargs)
            if kwargs.get("cfg_merge"):
                raise ValueError("cfg_merge is not supported with Lynx inputs; Lynx runs its own guidance branches.")
            if kwargs.get("tea_cache_l1_thresh") is not None and cfg_scale > 1:
                raise ValueError("TeaCache caches one guidance branch; it cannot be combined with Lynx guidance.")
            check_guidance_pair(cfg_scale, cfg_scale_i)
            self._lynx_call = {
                "lynx_id_image": lynx_id_image, "lynx_id_embeds": lynx_id_embeds, "lynx_id_tokens": lynx_id_tokens,
                "lynx_ref_image": lynx_ref_image, "lynx_ref_latents": lynx_ref_latents,
                "lynx_ref_features": lynx_ref_features, "lynx_ref_prompt": lynx_ref_prompt,
                "lynx_ref_seed": lynx_ref_seed, "lynx_id_scale": lynx_id_scale, "lynx_ref_scale": lynx_ref_scale,
                "lynx_step_window": lynx_step_window, "lynx_blocks": lynx_blocks,
                "lynx_cfg_scale": float(cfg_scale), "lynx_cfg_scale_i": cfg_scale_i,
                "lynx_negative_prompt": negative_prompt,
                "lynx_fast": start_run(lynx_fast, self.device, self.torch_dtype),
            }
            run = self._lynx_call["lynx_fast"]
            try:
                return super().__call__(prompt=prompt, negative_prompt=negative_prompt, cfg_scale=1.0, **kwargs)
            finally:
                self._lynx_call = None
                self.lynx_fast_stats = None if run is None else run.stats()

    def _lynx_sampler(self, sampler: Optional[str]):
        from .samplers import use_sampler

        return use_sampler(self, sampler)


def lynx_pipeline_class(cls: type) -> type:
    """``cls`` with `LynxPipelineMixin` in front (cached, so ``type(pipe)`` is stable)."""
    if issubclass(cls, LynxPipelineMixin):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"Lynx{cls.__name__}", (LynxPipelineMixin, cls), {"__module__": __name__})
    return _CLASSES[cls]
