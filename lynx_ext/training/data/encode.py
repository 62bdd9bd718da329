"""The second half of ``prepare``: cache the frozen encoders' outputs of a prepared folder for a training recipe.

Prompt encodings (umT5, one per unique caption, plus the empty caption of text dropout and the reference pass's
prompt) and, with ``latents=True``, the VAE latents of every row's fixed window at the recipe's resolution
buckets. Formats and keys: `lynx_ext.training.encoding_cache`. Files already there are kept, so a run resumes.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Optional

from ..args import BaseModelArgs, SampleSpec


@dataclass
class EncodeSummary:
    """What one `cache_encodings` run did."""

    output_dir: Path
    prompts: int = 0
    prompts_written: int = 0
    latents: int = 0
    latents_written: int = 0
    seconds: float = 0.0

    def text(self) -> str:
        lines = [f"encodings: {self.prompts_written} new of {self.prompts} prompt encodings"]
        if self.latents:
            lines.append(f"latents: {self.latents_written} new of {self.latents} rows")
        return "; ".join(lines) + f" in {self.seconds:.1f} s ({self.output_dir})"


def recipe_inputs(recipe: str | os.PathLike) -> tuple[BaseModelArgs, SampleSpec]:
    """The base model (``model.base``) and sample spec (``data.sample``) of a training recipe YAML."""
    import yaml

    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"Recipe {path} does not exist; pass the training recipe the cache is for "
                                "(e.g. recipes/wan2.1-t2v-14b/full_stage1_image.yaml).")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"Recipe {path} is not valid YAML ({err}).") from None
    base = _group(BaseModelArgs, (config.get("model") or {}).get("base"), f"{path}: model.base")
    sample = _group(SampleSpec, (config.get("data") or {}).get("sample"), f"{path}: data.sample")
    return base, replace(sample, buckets=[tuple(b) for b in sample.buckets])


def _group(cls, values, where: str):
    values = dict(values or {})
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}.")
    return cls(**values)


def encoder_base(base: BaseModelArgs) -> BaseModelArgs:
    """``base`` without the DiT when it comes from a hub preset (prepare needs only the text encoder and the VAE)."""
    from ...models.presets import BASE_MODELS

    if base.preset in ("tiny", "custom") or base.model_paths or base.model_id_with_origin_paths:
        return base
    specs = [s for s in BASE_MODELS[base.preset].model_id_with_origin_paths if "diffusion_pytorch_model" not in s]
    return replace(base, preset="custom", model_id_with_origin_paths=specs)


def cache_encodings(output_dir: str | os.PathLike, base: BaseModelArgs, sample: Optional[SampleSpec] = None, *,
                    latents: bool = False, pipe=None, device: Optional[str] = None, progress: bool = True,
                    verbose: bool = True) -> EncodeSummary:
    """Write the prompt encodings (and with ``latents`` the VAE latents) of the prepared folder ``output_dir``.

    Args:
        output_dir: a folder written by `prepare_dataset`.
        base: the recipe's base model (its text encoder and VAE are loaded; a hub preset's DiT is not).
        sample: the recipe's sample spec (frames, buckets, stride), needed for ``latents``.
        latents: also cache VAE latents (each row's middle window; training then uses that window every epoch).
        pipe: a ready pipeline to encode with (else one is built from ``base`` on ``device``).
        device: cpu / cuda[:i]; default cuda when available.
    """
    import torch
    from tqdm.auto import tqdm

    from ...pipeline.units import DEFAULT_REF_PROMPT, encode_prompt
    from ..dataset import LynxTrainingDataset, latent_spec, usable_rows
    from ..encoding_cache import (LATENTS_DIR, TEXT_DIR, latent_key, read_index, save_tensor, text_encoder_fingerprint,
                                  text_key, vae_fingerprint, vae_latents, write_index)

    t0 = time.perf_counter()
    out = Path(output_dir)
    rows = usable_rows(out)
    if latents and sample is None:
        raise ValueError("Caching latents needs the recipe's sample spec (frames and resolution buckets).")
    if pipe is None:
        from ..build import build_pipe

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = build_pipe(encoder_base(base), device=device)
    summary = EncodeSummary(output_dir=out)
    fingerprint = text_encoder_fingerprint(pipe)
    prompts = list(dict.fromkeys([r["prompt"] for r in rows] + ["", DEFAULT_REF_PROMPT]))
    summary.prompts = len(prompts)
    for prompt in tqdm(prompts, desc="encode prompts", unit="prompt", disable=not progress, file=sys.stderr):
        path = out / TEXT_DIR / f"{text_key(fingerprint, prompt)}.safetensors"
        if not path.is_file():
            with torch.no_grad():
                save_tensor(path, "context", encode_prompt(pipe, prompt))
            summary.prompts_written += 1
    index = read_index(out)
    index.update(format=1, text_encoder=fingerprint, prompts=len(prompts), base=asdict(base))
    if latents:
        dataset = LynxTrainingDataset(out, sample, rows=rows)
        vae = vae_fingerprint(pipe)
        summary.latents = len(rows)
        for k in tqdm(range(len(rows)), desc="encode latents", unit="row", disable=not progress, file=sys.stderr):
            row = rows[k]
            h, w = dataset.size_of(row)
            indices = dataset.window(row, dataset.rng(k), fixed=True)
            path = out / LATENTS_DIR / f"{latent_key(vae, row['id'], indices, h, w)}.safetensors"
            if not path.is_file():
                save_tensor(path, "latents", vae_latents(pipe, dataset.clip(row, indices, h, w)))
                summary.latents_written += 1
        index.update(latents=True, vae=vae, sample=latent_spec(sample))
    write_index(out, index)
    summary.seconds = time.perf_counter() - t0
    if verbose:
        print(summary.text())
    return summary
