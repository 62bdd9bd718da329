"""DiffSynth `PipelineUnit`s that turn Lynx inputs into what `model_fn_lynx` consumes.

Every input they add to DiffSynth's flat namespace is prefixed ``lynx_``. Each unit accepts already
computed tensors (``lynx_id_embeds``, ``lynx_id_tokens``, ``lynx_ref_latents``, ``lynx_ref_features``) and
then skips its work, which is what a data-processing cache stores.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffsynth.diffusion.base_pipeline import PipelineUnit
from PIL import Image

from ..conditioners.vae_sample import sample_reference_latent
from .face_conditioning import condition_on_face
from .guidance import LynxGuidance
from .installation import installation
from .reference_pass import capture_reference_features

DEFAULT_REF_PROMPT = "image of a face"


def encode_prompt(pipe, prompt: str) -> torch.Tensor:
    """The host's prompt encoding (tokenizer + umT5, padding rows zeroed)."""
    from diffsynth.pipelines.wan_video import WanVideoUnit_PromptEmbedder

    if pipe.text_encoder is None or pipe.tokenizer is None:
        raise RuntimeError("This pipeline has no text encoder/tokenizer, so prompts cannot be encoded.")
    pipe.load_models_to_device(("text_encoder",))
    weight = next(pipe.text_encoder.parameters(), None)
    where = weight.device if weight is not None else torch.device(pipe.device)
    if getattr(pipe, "vram_management_enabled", False) or where.type == torch.device(pipe.device).type:
        return WanVideoUnit_PromptEmbedder().encode_prompt(pipe, prompt)
    device = pipe.device  # the encoder waits on the CPU (training with cached encodings): encode there
    pipe.device = where
    try:
        return WanVideoUnit_PromptEmbedder().encode_prompt(pipe, prompt).to(device)
    finally:
        pipe.device = device


def guidance_on(cfg_scale: Optional[float]) -> bool:
    return cfg_scale is not None and cfg_scale > 1


class LynxUnit_CallInputs(PipelineUnit):
    """Copies the call-time ``lynx_*`` arguments (stashed by the pipeline's ``__call__``) into the inputs."""

    def __init__(self):
        super().__init__(take_over=True, output_params=("lynx_timesteps",))

    def process(self, pipe, inputs_shared, inputs_posi, inputs_nega):
        call = getattr(pipe, "_lynx_call", None) or {}
        inputs_shared.update(call)
        if getattr(pipe.scheduler, "timesteps", None) is not None and not getattr(pipe.scheduler, "training", False):
            inputs_shared["lynx_timesteps"] = pipe.scheduler.timesteps
        return inputs_shared, inputs_posi, inputs_nega


class LynxUnit_FaceEmbedder(PipelineUnit):
    """Face photo -> identity embedding and the 256-px aligned crop for the Ref path (`condition_on_face`)."""

    def __init__(self):
        super().__init__(
            input_params=("lynx_id_image", "lynx_id_embeds", "lynx_ref_image", "lynx_ref_latents",
                          "lynx_ref_features"),
            output_params=("lynx_id_embeds", "lynx_ref_image", "lynx_face_report"),
        )

    def process(self, pipe, lynx_id_image, lynx_id_embeds, lynx_ref_image, lynx_ref_latents, lynx_ref_features):
        if lynx_id_image is None:
            return {}
        face = condition_on_face(installation(pipe).face_analyzer, lynx_id_image, pipe.lynx)
        out = {"lynx_face_report": face.analysis.report()}
        if lynx_id_embeds is None:
            out["lynx_id_embeds"] = face.id_embeds
        if lynx_ref_image is None and lynx_ref_latents is None and lynx_ref_features is None:
            out["lynx_ref_image"] = face.ref_image
        return out


class LynxUnit_IdEmbedder(PipelineUnit):
    """Face embedding -> identity tokens (and the zero-face tokens for guidance)."""

    def __init__(self):
        super().__init__(
            input_params=("lynx_id_embeds", "lynx_id_tokens", "lynx_cfg_scale"),
            output_params=("lynx_id_tokens", "lynx_id_tokens_nega"),
            onload_model_names=("lynx",),
        )

    def process(self, pipe, lynx_id_embeds, lynx_id_tokens, lynx_cfg_scale):
        if lynx_id_tokens is None and lynx_id_embeds is None:
            return {}
        pipe.load_models_to_device(self.onload_model_names)
        out = {}
        if lynx_id_tokens is None:
            embeds = torch.as_tensor(lynx_id_embeds).to(device=pipe.device, dtype=pipe.torch_dtype)
            out["lynx_id_tokens"] = pipe.lynx.encode_identity(embeds)
            if guidance_on(lynx_cfg_scale):
                out["lynx_id_tokens_nega"] = pipe.lynx.encode_identity(torch.zeros_like(embeds))
        elif guidance_on(lynx_cfg_scale):
            dim = pipe.lynx.config.resampler.embedding_dim
            zeros = torch.zeros(lynx_id_tokens.shape[0], dim, device=pipe.device, dtype=pipe.torch_dtype)
            out["lynx_id_tokens_nega"] = pipe.lynx.encode_identity(zeros)
        return out


class LynxUnit_RefEmbedder(PipelineUnit):
    """Aligned face crop -> VAE latent sample -> one DiT pass at t=0 -> per-block reference features."""

    def __init__(self):
        super().__init__(
            input_params=("lynx_ref_image", "lynx_ref_latents", "lynx_ref_features", "lynx_ref_prompt",
                          "lynx_ref_seed", "seed", "lynx_cfg_scale"),
            output_params=("lynx_ref_features", "lynx_ref_features_nega"),
            onload_model_names=("vae", "text_encoder", "dit"),
        )

    def process(self, pipe, lynx_ref_image, lynx_ref_latents, lynx_ref_features, lynx_ref_prompt, lynx_ref_seed,
                seed, lynx_cfg_scale):
        if not pipe.lynx.config.has_ref:
            return {}
        want_nega = guidance_on(lynx_cfg_scale)
        if lynx_ref_features is not None and not want_nega:
            return {}
        if lynx_ref_image is None and lynx_ref_latents is None:
            return {}
        ref_seed = lynx_ref_seed if lynx_ref_seed is not None else (None if seed is None else seed + 1)
        with torch.no_grad():
            context = encode_prompt(pipe, lynx_ref_prompt or DEFAULT_REF_PROMPT)
            latents = {}
            if (lynx_ref_latents is None and lynx_ref_features is None) or want_nega:
                if pipe.vae is None:
                    raise RuntimeError("Reference features from an image need the pipeline's VAE.")
                pipe.load_models_to_device(("vae",))
                image = lynx_ref_image
                if image is None:  # only latents were given: the grey image needs the crop's pixel size
                    h, w = lynx_ref_latents.shape[-2:]
                    image = Image.new("RGB", (w * pipe.vae.upsampling_factor, h * pipe.vae.upsampling_factor))
                if lynx_ref_latents is None and lynx_ref_features is None:
                    latents["cond"] = sample_reference_latent(pipe.vae, image, ref_seed, pipe.device, pipe.torch_dtype)
                if want_nega:
                    latents["nega"] = sample_reference_latent(
                        pipe.vae, image, ref_seed, pipe.device, pipe.torch_dtype, drop=True
                    )
            if lynx_ref_latents is not None:
                latents["cond"] = lynx_ref_latents.to(device=pipe.device, dtype=pipe.torch_dtype)
            pipe.load_models_to_device(("dit",))
            out = {}
            if lynx_ref_features is None:
                out["lynx_ref_features"] = capture_reference_features(pipe, latents["cond"], context)
            if want_nega:
                out["lynx_ref_features_nega"] = capture_reference_features(pipe, latents["nega"], context)
        return out


class LynxUnit_Guidance(PipelineUnit):
    """Builds the extra guidance branches' inputs (negative prompt, zero-face tokens, grey-reference features)."""

    def __init__(self):
        super().__init__(take_over=True, output_params=("lynx_guidance",))

    def process(self, pipe, inputs_shared, inputs_posi, inputs_nega):
        cfg = inputs_shared.get("lynx_cfg_scale")
        has_cond = inputs_shared.get("lynx_id_tokens") is not None or inputs_shared.get("lynx_ref_features") is not None
        if not guidance_on(cfg) or not has_cond:
            return inputs_shared, inputs_posi, inputs_nega
        negative_prompt = inputs_shared.get("lynx_negative_prompt")
        if negative_prompt is None:
            negative_prompt = inputs_nega.get("negative_prompt", "")
        with torch.no_grad():
            context_nega = encode_prompt(pipe, negative_prompt)
        inputs_shared["lynx_guidance"] = LynxGuidance(
            cfg_scale=float(cfg),
            cfg_scale_i=inputs_shared.get("lynx_cfg_scale_i"),
            context_nega=context_nega,
            id_tokens_nega=inputs_shared.get("lynx_id_tokens_nega"),
            ref_features_nega=inputs_shared.get("lynx_ref_features_nega"),
        )
        return inputs_shared, inputs_posi, inputs_nega


def lynx_units() -> list[PipelineUnit]:
    """The units `install` inserts after the host's prompt embedder, in order."""
    return [LynxUnit_CallInputs(), LynxUnit_FaceEmbedder(), LynxUnit_IdEmbedder(), LynxUnit_RefEmbedder(),
            LynxUnit_Guidance()]
