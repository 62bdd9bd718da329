"""Reproduce every tensor of an official-code fixture folder with our implementation on DiffSynth's `WanModel`.

A folder holds ``transformer.safetensors`` + ``transformer_config.json`` (diffusers format), the official
adapter files (+ ``resampler_config.json``), ``inputs.safetensors``, ``outputs.safetensors`` and
``call_params.json``. Any dims, block counts and register counts work; output names are matched by rule,
and a name no rule knows is a failure, never a silent pass.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors.torch import load_file

from ..errors import LynxFormatError, LynxMissingFileError

ATOL = RTOL = 1e-4
CFG_ATOL = 5e-4


def read_json(path: Path) -> dict:
    """A JSON object file of a fixture folder; malformed JSON is a `LynxFormatError` naming the file and line."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LynxFormatError(f"{path} is not UTF-8 text; write the fixture's JSON again.") from None
    except json.JSONDecodeError as err:
        raise LynxFormatError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}). "
                              "Fix or re-record the file.") from None
    if not isinstance(data, dict):
        raise LynxFormatError(f"{path} must hold a JSON object (name: value), got {type(data).__name__}.")
    return data


def check_safetensors(path: Path) -> None:
    """Refuse a fixture tensor file that is not a complete safetensors file, saying what it is."""
    from ..adapters.formats.detect import FormatKind, detect_format

    found = detect_format(path)
    if found.header is None and found.kind is not FormatKind.MISSING:
        raise LynxFormatError(f"{path} is {found.description}, not a safetensors file of the fixture. Re-record it.")


@dataclass
class ParityRow:
    name: str
    max_abs: float
    max_rel: float
    passed: bool
    note: str = ""


class ParityCase:
    """One fixture folder, loaded into a DiffSynth pipeline with Lynx installed."""

    def __init__(self, folder: str | Path):
        from diffsynth.pipelines.wan_video import WanVideoPipeline

        from ..adapters.formats import load_official_folder
        from ..models.wan_diffusers import load_diffusers_wan
        from ..pipeline.install import install

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise LynxMissingFileError(f"Parity folder {self.folder} does not exist (or is not a folder).")
        for name in ("transformer.safetensors", "transformer_config.json", "inputs.safetensors", "outputs.safetensors"):
            if not (self.folder / name).is_file():
                raise LynxMissingFileError(f"{self.folder} has no {name}; is this a parity fixture folder?")
        for name in ("transformer_config.json", "call_params.json"):
            read_json(self.folder / name)  # malformed JSON: named with its line before anything loads
        for name in ("transformer.safetensors", "inputs.safetensors", "outputs.safetensors"):
            check_safetensors(self.folder / name)
        self.params = read_json(self.folder / "call_params.json") if (self.folder / "call_params.json").is_file() else {}
        self.dit = load_diffusers_wan(self.folder / "transformer.safetensors", self.folder / "transformer_config.json")
        self.pipe = WanVideoPipeline(device="cpu", torch_dtype=torch.float32)
        self.pipe.dit = self.dit
        adapters = load_official_folder(self.folder, self.dit.dim, len(self.dit.blocks))
        install(self.pipe, adapters)
        self.lynx = self.pipe.lynx
        self.inputs = load_file(str(self.folder / "inputs.safetensors"))
        self.expected = load_file(str(self.folder / "outputs.safetensors"))

    # ---------------------------------------------------------------- inputs
    def inp(self, name: str) -> torch.Tensor:
        if name not in self.inputs:
            raise KeyError(f"inputs.safetensors has no '{name}'")
        return self.inputs[name]

    @property
    def timestep(self) -> torch.Tensor:
        return self.inp("timestep").to(torch.float32)

    def tokens(self, embed_name: str) -> torch.Tensor:
        with torch.no_grad():
            return self.lynx.encode_identity(self.inp(embed_name))

    def predict(self, context: str, tokens: Optional[torch.Tensor], ref: Optional[dict], id_scale=1.0, ref_scale=1.0,
                guidance=None, latents: Optional[torch.Tensor] = None) -> torch.Tensor:
        with torch.no_grad():
            return self.pipe.model_fn(
                dit=self.dit, lynx=self.lynx, latents=self.inp("latents") if latents is None else latents,
                timestep=self.timestep, context=self.inp(context) if isinstance(context, str) else context,
                lynx_id_tokens=tokens, lynx_ref_features=ref, lynx_id_scale=id_scale, lynx_ref_scale=ref_scale,
                lynx_guidance=guidance,
            )

    # ------------------------------------------------------------ reference
    def capture(self, latent_name: str) -> dict[int, torch.Tensor]:
        from ..pipeline.reference_pass import capture_reference_features

        return capture_reference_features(self.pipe, self.inp(latent_name), self.inp("ref_text_embeds"))

    @cached_property
    def ref_cond(self):
        return self.capture("ref_latent")

    @cached_property
    def ref_uncond(self):
        return self.capture("ref_latent_uncond")

    @cached_property
    def packed_ref(self):
        from ..training.packed_forward import packed_forward

        text = self.inp("ref_text_embeds")
        with torch.no_grad():
            feats, lens = packed_forward(self.pipe, [self.inp("ref_latent"), self.inp("packed_ref_latent_2")],
                                         torch.zeros(1), [text, text], capture=True)
        return feats, lens

    @cached_property
    def packed_preds(self):
        from ..training.packed_forward import packed_forward

        feats, lens = self.packed_ref
        with torch.no_grad():
            return packed_forward(
                self.pipe, [self.inp("latents"), self.inp("packed_latents_2")], self.timestep,
                [self.inp("prompt_embeds"), self.inp("packed_prompt_embeds_2")],
                id_tokens=[self.tokens("arcface_embed"), self.tokens("packed_arcface_embed_2")],
                ref_features=feats, ref_lens=lens,
            )

    # -------------------------------------------------------------- outputs
    def guidance(self, three_branch: bool):
        from ..pipeline.guidance import LynxGuidance

        g = float(self.params.get("guidance_scale", 5.0))
        gi = float(self.params["guidance_scale_i"]) if three_branch else None
        return LynxGuidance(
            cfg_scale=g, cfg_scale_i=gi, context_nega=self.inp("negative_prompt_embeds"),
            id_tokens_nega=self.tokens("arcface_embed_uncond"),
            ref_features_nega=self.ref_uncond if self.lynx.config.has_ref else None,
        )

    def ref_or_none(self):
        return self.ref_cond if self.lynx.config.has_ref else None

    def rules(self) -> list[tuple[str, Callable[[re.Match], torch.Tensor]]]:
        """(regex, compute) pairs; the first full match computes the output."""
        lens_of = lambda feats_tensor: torch.tensor([feats_tensor.shape[1]], dtype=torch.int64)  # noqa: E731
        scale = lambda s: float(s.replace("p", "."))  # noqa: E731
        return [
            (r"resampler_out_cond", lambda m: self.tokens("arcface_embed")),
            (r"resampler_out_uncond", lambda m: self.tokens("arcface_embed_uncond")),
            (r"resampler_out_batch_uncond_cond", lambda m: self.lynx.encode_identity(
                torch.cat([self.inp("arcface_embed_uncond"), self.inp("arcface_embed")])).detach()),
            (r"packed_resampler_out_2", lambda m: self.tokens("packed_arcface_embed_2")),
            (r"ref_buffer\.blocks\.(\d+)\.attn1\.processor", lambda m: self.ref_cond[int(m.group(1))]),
            (r"ref_buffer_lens\.blocks\.(\d+)\.attn1\.processor", lambda m: lens_of(self.ref_cond[int(m.group(1))])),
            (r"ref_buffer_uncond\.blocks\.(\d+)\.attn1\.processor", lambda m: self.ref_uncond[int(m.group(1))]),
            (r"ref_buffer_uncond_lens\.blocks\.(\d+)\.attn1\.processor",
             lambda m: lens_of(self.ref_uncond[int(m.group(1))])),
            (r"packed_ref_buffer\.blocks\.(\d+)\.attn1\.processor", lambda m: self.packed_ref[0][int(m.group(1))]),
            (r"packed_ref_buffer_lens\.blocks\.(\d+)\.attn1\.processor",
             lambda m: torch.tensor(self.packed_ref[1], dtype=torch.int64)),
            (r"packed_noise_pred_(\d+)", lambda m: self.packed_preds[int(m.group(1))]),
            (r"noise_pred_base", lambda m: self.predict("prompt_embeds", None, None)),
            (r"noise_pred_cond", lambda m: self.predict("prompt_embeds", self.tokens("arcface_embed"), self.ref_or_none())),
            (r"noise_pred_uncond", lambda m: self.predict("negative_prompt_embeds", self.tokens("arcface_embed_uncond"),
                                                          self.ref_uncond if self.lynx.config.has_ref else None)),
            (r"noise_pred_i", lambda m: self.predict("negative_prompt_embeds", self.tokens("arcface_embed"),
                                                     self.ref_or_none())),
            (r"noise_pred_ip_only", lambda m: self.predict("prompt_embeds", self.tokens("arcface_embed"), None)),
            (r"noise_pred_ref_only", lambda m: self.predict("prompt_embeds", None, self.ref_cond)),
            (r"noise_pred_scales_zero", lambda m: self.predict("prompt_embeds", self.tokens("arcface_embed"),
                                                               self.ref_or_none(), 0.0, 0.0)),
            (r"noise_pred_ip(\d+(?:p\d+)?)_ref(\d+(?:p\d+)?)", lambda m: self.predict(
                "prompt_embeds", self.tokens("arcface_embed"), self.ref_or_none(), scale(m.group(1)), scale(m.group(2)))),
            (r"noise_pred_ip_scale_(\d+(?:p\d+)?)_official", lambda m: self.with_quirk(scale(m.group(1)))),
            (r"noise_pred_ip_scale_(\d+(?:p\d+)?)", lambda m: self.predict(
                "prompt_embeds", self.tokens("arcface_embed"), self.ref_or_none(), scale(m.group(1)))),
            (r"noise_pred_batch_uncond_cond", lambda m: self.predict(
                torch.cat([self.inp("negative_prompt_embeds"), self.inp("prompt_embeds")]),
                self.lynx.encode_identity(torch.cat([self.inp("arcface_embed_uncond"), self.inp("arcface_embed")])).detach(),
                None)),
            (r"noise_pred_cfg", lambda m: self.predict(
                "prompt_embeds", self.tokens("arcface_embed"), self.ref_or_none(),
                guidance=self.guidance(self.params.get("guidance_scale_i") is not None))),
        ]

    def with_quirk(self, id_scale: float) -> torch.Tensor:
        config = self.lynx.config
        saved = config.lite_zero_scale_quirk
        config.lite_zero_scale_quirk = True
        try:
            return self.predict("prompt_embeds", self.tokens("arcface_embed"), self.ref_or_none(), id_scale)
        finally:
            config.lite_zero_scale_quirk = saved

    def compute(self, name: str) -> torch.Tensor:
        for pattern, fn in self.rules():
            m = re.fullmatch(pattern, name)
            if m:
                return fn(m)
        raise KeyError(f"unknown output name '{name}' (no rule computes it)")


def compare(name: str, got: torch.Tensor, want: torch.Tensor) -> ParityRow:
    if tuple(got.shape) != tuple(want.shape):
        return ParityRow(name, float("inf"), float("inf"), False, f"shape {list(got.shape)} != {list(want.shape)}")
    if not want.is_floating_point():
        ok = torch.equal(got.to(want.dtype), want)
        return ParityRow(name, 0.0 if ok else float("inf"), 0.0 if ok else float("inf"), ok)
    got, want = got.detach().double(), want.double()
    diff = (got - want).abs()
    atol = CFG_ATOL if name.endswith("_cfg") else ATOL
    passed = bool(torch.all(diff <= atol + RTOL * want.abs())) and bool(torch.isfinite(got).all())
    max_rel = float(diff.max() / want.abs().max().clamp_min(1e-12))  # relative to the largest magnitude
    return ParityRow(name, float(diff.max()), max_rel, passed)


def run_parity(folder: str | Path) -> list[ParityRow]:
    case = ParityCase(folder)
    rows = []
    for name in sorted(case.expected):
        try:
            got = case.compute(name)
        except KeyError as err:
            rows.append(ParityRow(name, float("nan"), float("nan"), False, str(err).strip("'\"")))
            continue
        rows.append(compare(name, got, case.expected[name]))
    return rows


def format_table(rows: list[ParityRow]) -> str:
    width = max([len(r.name) for r in rows] + [6])
    lines = [f"{'output':<{width}}  {'max abs err':>12}  {'max rel err':>12}  pass", "-" * (width + 36)]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {r.max_abs:>12.3e}  {r.max_rel:>12.3e}  {'yes' if r.passed else 'NO'}"
                     + (f"  ({r.note})" if r.note else ""))
    n_ok = sum(r.passed for r in rows)
    lines.append(f"{n_ok}/{len(rows)} outputs within tolerance (atol=rtol={ATOL:g}; *_cfg atol={CFG_ATOL:g})")
    return "\n".join(lines)
