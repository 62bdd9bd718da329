"""Diffusers-format Wan transformers (the official Lynx base, ``Wan-AI/Wan2.1-T2V-14B-Diffusers``) in DiffSynth.

DiffSynth ships the key converter (`WanVideoDiTFromDiffusers`) but registers it only for Video-As-Prompt.
Here a diffusers ``config.json`` becomes `WanModel` arguments, the weights go through the host converter,
and RoPE follows diffusers' split of the head dimension (equal to DiffSynth's wherever DiffSynth's works).
"""
from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Optional

import torch
from diffsynth.models.wan_video_dit import WanModel, precompute_freqs_cis
from diffsynth.utils.state_dict_converters.wan_video_dit import WanVideoDiTFromDiffusers
from safetensors.torch import load_file


class DiffusersConfigError(ValueError):
    """A diffusers Wan transformer config that DiffSynth's `WanModel` cannot represent."""


def wan_kwargs_from_diffusers(config: dict) -> dict:
    """Translate a diffusers `WanTransformer3DModel` config into `WanModel` keyword arguments."""
    if config.get("qk_norm", "rms_norm_across_heads") != "rms_norm_across_heads":
        raise DiffusersConfigError(f"qk_norm={config['qk_norm']!r} is not supported (Wan uses rms_norm_across_heads).")
    if not config.get("cross_attn_norm", True):
        raise DiffusersConfigError("cross_attn_norm=False is not supported: every Wan2.1 model uses it.")
    if config.get("added_kv_proj_dim") is not None or config.get("image_dim") is not None:
        raise DiffusersConfigError("Image-conditioned (I2V) diffusers transformers are not supported here.")
    heads = int(config.get("num_attention_heads", 40))
    head_dim = int(config.get("attention_head_dim", 128))
    return dict(
        dim=heads * head_dim, in_dim=int(config.get("in_channels", 16)), ffn_dim=int(config.get("ffn_dim", 13824)),
        out_dim=int(config.get("out_channels", 16)), text_dim=int(config.get("text_dim", 4096)),
        freq_dim=int(config.get("freq_dim", 256)), eps=float(config.get("eps", 1e-6)),
        patch_size=list(config.get("patch_size", [1, 2, 2])), num_heads=heads,
        num_layers=int(config.get("num_layers", 40)), has_image_input=False,
    )


def diffusers_rope_freqs(head_dim: int, max_seq_len: int = 1024):
    """RoPE tables with diffusers' split (t: rest, h = w = 2*(head_dim//6)), in DiffSynth's tuple layout."""
    hw = 2 * (head_dim // 6)
    t = head_dim - 2 * hw
    return (precompute_freqs_cis(t, max_seq_len), precompute_freqs_cis(hw, max_seq_len),
            precompute_freqs_cis(hw, max_seq_len))


def use_diffusers_rope(dit: WanModel, max_seq_len: int = 1024) -> None:
    """Make ``dit`` rotate exactly as diffusers does (a no-op whenever ``head_dim // 3`` is even)."""
    dit.freqs = diffusers_rope_freqs(dit.dim // dit.blocks[0].self_attn.num_heads, max_seq_len)


def _weight_files(path: Path) -> list[str]:
    if path.is_file():
        return [str(path)]
    files = sorted(glob.glob(str(path / "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"No .safetensors weights in {path}.")
    return files


def load_diffusers_wan(
    weights: str | Path,
    config: Optional[dict | str | Path] = None,
    torch_dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> WanModel:
    """Build a DiffSynth `WanModel` from diffusers-format weights (a file or a ``transformer/`` folder).

    ``config`` is the diffusers config dict or its JSON path; default: ``config.json`` next to the weights.
    """
    weights = Path(weights)
    if config is None:
        folder = weights if weights.is_dir() else weights.parent
        candidates = [folder / "config.json", folder / "transformer_config.json"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"No diffusers config.json next to {weights}; pass config=...")
        config = found
    if not isinstance(config, dict):
        config = json.loads(Path(config).read_text())
    kwargs = wan_kwargs_from_diffusers(config)
    with torch.device("meta"):
        dit = WanModel(**kwargs)
    state = {}
    for f in _weight_files(weights):
        state.update(load_file(f))
    converted = WanVideoDiTFromDiffusers(state)
    unknown = sorted(set(state) - {k for k in state if _maps(k)})
    if unknown:
        raise DiffusersConfigError(f"Unrecognised diffusers key '{unknown[0]}' in {weights}.")
    dit.load_state_dict(converted, assign=True, strict=True)
    use_diffusers_rope(dit, int(config.get("rope_max_seq_len", 1024)))
    return dit.to(dtype=torch_dtype, device=device).eval()


def _maps(key: str) -> bool:
    return bool(WanVideoDiTFromDiffusers({key: torch.empty(0)}))


# Hash of the diffusers-format Wan2.1-T2V-14B transformer shards (md5 of the sorted key:shape list that
# DiffSynth computes), derived from the diffusers 0.33.1 key layout of WanTransformer3DModel.
DIFFUSERS_T2V_14B_HASH = "cb104773c6c2cb6df4f9529ad5c60d0b"


def register_diffusers_wan_14b() -> None:
    """Let ``ModelConfig(model_id="Wan-AI/Wan2.1-T2V-14B-Diffusers", origin_file_pattern="transformer/*.safetensors")``
    load through DiffSynth's own loader (idempotent)."""
    from diffsynth.configs.model_configs import MODEL_CONFIGS

    if any(c["model_hash"] == DIFFUSERS_T2V_14B_HASH for c in MODEL_CONFIGS):
        return
    MODEL_CONFIGS.append({
        "model_hash": DIFFUSERS_T2V_14B_HASH,
        "model_name": "wan_video_dit",
        "model_class": "diffsynth.models.wan_video_dit.WanModel",
        "extra_kwargs": {"has_image_input": False, "patch_size": [1, 2, 2], "in_dim": 16, "dim": 5120,
                         "ffn_dim": 13824, "freq_dim": 256, "text_dim": 4096, "out_dim": 16, "num_heads": 40,
                         "num_layers": 40, "eps": 1e-06},
        "state_dict_converter": "diffsynth.utils.state_dict_converters.wan_video_dit.WanVideoDiTFromDiffusers",
    })
