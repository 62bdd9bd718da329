"""Tiny, deterministic, *real* Wan2.1 models (DiffSynth classes at toy size) for tests and the offline demo.

`build_tiny_wan(folder)` writes a DiT, an umT5 encoder, a word-level tokenizer and a small Wan VAE as
safetensors, plus ``tiny_wan.json``; `tiny_model_configs(folder)` registers them with DiffSynth's
`MODEL_CONFIGS` (by file hash, as the host does) and returns the `ModelConfig`s for
`WanVideoPipeline.from_pretrained`. Nothing is downloaded.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffsynth.configs.model_configs import MODEL_CONFIGS
from diffsynth.core import ModelConfig
from diffsynth.core.loader.file import hash_model_file
from diffsynth.models.wan_video_vae import VideoVAE_, WanVideoVAE
from safetensors.torch import save_file

from ..atomic_write import atomic_path

MANIFEST = "tiny_wan.json"
WORDS = (
    "a the of and in on with man woman person face smiling walking talking city street park beach sunset portrait "
    "image video camera looking at bright overexposed blurred background static subtitles style works paintings "
    "images overall gray worst quality low jpeg compression residue ugly incomplete extra fingers poorly drawn hands "
    "faces deformed disfigured misshapen limbs fused still picture messy three legs many people walking backwards "
    "astronaut suit flag space red blue green coffee reading book dancing rain snow"
).split()

DEFAULT_DIT = dict(dim=96, in_dim=16, ffn_dim=192, out_dim=16, text_dim=32, freq_dim=32, eps=1e-6,
                   patch_size=[1, 2, 2], num_heads=4, num_layers=4, has_image_input=False)
DEFAULT_T5 = dict(vocab=len(WORDS) + 8, dim=32, dim_attn=32, dim_ffn=64, num_heads=2, num_layers=2, num_buckets=32)


class TinyWanVideoVAE(WanVideoVAE):
    """The Wan2.1 VAE architecture (8x spatial, 4x temporal) at a small width."""

    def __init__(self, z_dim: int = 16, dim: int = 8):
        super().__init__(z_dim=z_dim)
        self.model = VideoVAE_(dim=dim, z_dim=z_dim).eval().requires_grad_(False)


def _save(tensors: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def _tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(folder))


def build_tiny_wan(folder: str | Path, seed: int = 0, dit: dict | None = None, vae_dim: int = 8) -> Path:
    """Write the tiny Wan model files into ``folder`` (deterministic for a given seed). Returns the folder."""
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dit_kwargs = dict(DEFAULT_DIT, **(dit or {}))
    with torch.random.fork_rng(devices=[]):  # the caller's global random state is left untouched
        torch.manual_seed(seed)
        model = WanModel(**dit_kwargs)
        with torch.no_grad():  # randomise the affine norms so no parameter is a silent identity
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
        t5 = WanTextEncoder(**DEFAULT_T5)
        vae = TinyWanVideoVAE(dim=vae_dim)
        for p in vae.model.parameters():
            torch.nn.init.normal_(p, std=0.05)
    _save(model.state_dict(), folder / "dit.safetensors")
    _save(t5.state_dict(), folder / "text_encoder.safetensors")
    _save({k[len("model."):]: v for k, v in vae.state_dict().items() if k.startswith("model.")},
          folder / "vae.safetensors")
    _tokenizer(folder / "tokenizer")
    manifest = {"dit": dit_kwargs, "text_encoder": DEFAULT_T5, "vae_dim": vae_dim, "seed": seed}
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2))
    return folder


def tiny_wan_folder(home: str | Path, dit: dict | None = None) -> Path:
    """The tiny Wan with these `WanModel` overrides under ``home`` (built on first use, then reused)."""
    changed = {k: v for k, v in (dit or {}).items() if DEFAULT_DIT.get(k) != v}
    key = "_".join(f"{k}{v}" for k, v in sorted(changed.items())) or "default"
    folder = Path(home) / f"wan_{key}"
    if not (folder / MANIFEST).is_file():
        build_tiny_wan(folder, dit=dit)
    return folder


def register_tiny_wan(folder: str | Path) -> dict:
    """Declare the tiny files to DiffSynth's model registry (idempotent). Returns the manifest."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    entries = [
        ("dit.safetensors", "wan_video_dit", "diffsynth.models.wan_video_dit.WanModel", manifest["dit"], None),
        ("text_encoder.safetensors", "wan_video_text_encoder",
         "diffsynth.models.wan_video_text_encoder.WanTextEncoder", manifest["text_encoder"], None),
        ("vae.safetensors", "wan_video_vae", "lynx_ext.tiny.wan.TinyWanVideoVAE", {"dim": manifest["vae_dim"]},
         "diffsynth.utils.state_dict_converters.wan_video_vae.WanVideoVAEStateDictConverter"),
    ]
    known = {(c["model_hash"], c["model_name"]) for c in MODEL_CONFIGS}
    for filename, name, cls, kwargs, converter in entries:
        h = hash_model_file(str(folder / filename))
        if (h, name) in known:
            continue
        entry = {"model_hash": h, "model_name": name, "model_class": cls, "extra_kwargs": kwargs}
        if converter:
            entry["state_dict_converter"] = converter
        MODEL_CONFIGS.append(entry)
    return manifest


def tiny_model_configs(folder: str | Path, **vram) -> tuple[list[ModelConfig], ModelConfig]:
    """(model configs, tokenizer config) for `WanVideoPipeline.from_pretrained`; ``vram`` goes to each config."""
    folder = Path(folder)
    register_tiny_wan(folder)
    configs = [ModelConfig(path=str(folder / f), **vram) for f in
               ("dit.safetensors", "text_encoder.safetensors", "vae.safetensors")]
    return configs, ModelConfig(path=str(folder / "tokenizer"))


def load_tiny_pipe(folder: str | Path, torch_dtype=torch.float32, device="cpu", **vram):
    """A `WanVideoPipeline` over the tiny models in ``folder`` (built with `build_tiny_wan`)."""
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    configs, tok = tiny_model_configs(folder, **vram)
    return WanVideoPipeline.from_pretrained(torch_dtype=torch_dtype, device=device, model_configs=configs,
                                            tokenizer_config=tok)
