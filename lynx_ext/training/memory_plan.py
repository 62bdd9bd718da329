"""What a training recipe will hold on the GPU, estimated from shapes before any weight loads, and the refusal of a
recipe that cannot fit the card it runs on (``fit``'s ``before_fit``), naming the options that would make it fit.

The estimate adds, in bytes on the device:

- the frozen base: the DiT's parameters in ``model.base.dtype`` (float8 plus a float32 scale per row for the
  blocks' linear weights with ``model.base.fp8_storage``), the Wan VAE, and the umT5 text encoder unless the
  prompt encodings are cached (`LynxModule.park_text_encoder`);
- the trained weights (adapters, LoRA): weights and gradients in ``model.trainable_dtype``, plus the optimiser's
  states (`optimizers.state_bytes_per_weight`: 8 bytes for AdamW, 2 for 8-bit AdamW, 0 when offloaded);
- activations at ``data.token_budget`` tokens: with gradient checkpointing one block input per block (none when
  offloaded to the host) and the working set of one block's recomputation and backward; without, every block's.

The working-set coefficients were fitted to `benchmarks/bench_14b_train.py` on an H200 (see docs/training.md);
the estimate is meant to be within a few GiB, and the check leaves that margin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

GIB = 2**30
# Working set of one checkpointed block's recomputation + backward, in activations of the token count: bytes per
# token = (WORK_DIM * dim + WORK_FFN * ffn) * 2 (bf16). Without checkpointing every block keeps SAVED_* of them.
WORK_DIM, WORK_FFN = 12, 4
SAVED_DIM, SAVED_FFN = 10, 3
CONTEXT_BYTES = 1.0 * GIB  # CUDA context, cuBLAS/cuDNN workspaces, allocator rounding
MARGIN = 0.04  # the card's memory the check keeps free (fragmentation, the estimate's error)
# Shapes of the base models the presets name (the tiny one is read from its own defaults).
DIT_SHAPES = {"wan2.1-t2v-14b": dict(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40, text_dim=4096,
                                     freq_dim=256, in_dim=16, out_dim=16)}
TEXT_ENCODER_PARAMS = {"wan2.1-t2v-14b": 5.68e9}  # umT5-XXL encoder
VAE_PARAMS = 1.27e8


@dataclass
class MemoryEstimate:
    """GiB on the device, by part, for one recipe at ``tokens`` tokens per step."""

    base: float
    text_encoder: float
    trained: float
    optimizer: float
    block_inputs: float
    working: float
    context: float
    tokens: int

    @property
    def total(self) -> float:
        return (self.base + self.text_encoder + self.trained + self.optimizer + self.block_inputs + self.working
                + self.context)

    def describe(self) -> str:
        return (f"frozen base {self.base:.1f} GiB, text encoder {self.text_encoder:.1f}, trained weights and "
                f"gradients {self.trained:.1f}, optimiser states {self.optimizer:.1f}, checkpointed block inputs "
                f"{self.block_inputs:.1f}, one block's working set {self.working:.1f} (at {self.tokens} tokens), "
                f"CUDA context {self.context:.1f}")


def _meta_dit(module):
    from diffsynth.models.wan_video_dit import WanModel

    base = module.base
    if base.preset == "tiny":
        from ..tiny.wan import DEFAULT_DIT

        cfg = dict(DEFAULT_DIT, **base.tiny_dit, text_dim=base.tiny_text_dim)
    elif base.preset in DIT_SHAPES:
        cfg = dict(DIT_SHAPES[base.preset], eps=1e-6, patch_size=(1, 2, 2), has_image_input=False)
    else:
        return None  # custom files: their shape is known only once loaded
    with torch.device("meta"):
        return WanModel(**cfg)


def _trained_params(module, dit) -> int:
    """Weights the recipe trains: the adapters (from ``init_from``'s headers or the recipe's shape) and a LoRA."""
    a = module.adapter_args
    if a.init_from:
        from safetensors import safe_open

        src = Path(a.init_from)
        files = sorted(src.glob("*.safetensors")) if src.is_dir() else [src]
        n = 0
        for f in files:
            with safe_open(str(f), "pt") as fh:
                n += sum(math.prod(fh.get_slice(key).get_shape()) for key in fh.keys())
    else:
        from ..adapters import LynxAdapters
        from .build import build_adapter_config

        with torch.device("meta"):
            n = sum(p.numel() for p in LynxAdapters(build_adapter_config(dit, a), init="zero").parameters())
    if module.lora_rank > 0:
        targets = [t.strip() for t in module.lora_target_modules.split(",")]
        for name, layer in dit.blocks.named_modules():
            if isinstance(layer, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in targets):
                n += module.lora_rank * (layer.in_features + layer.out_features)
    return n


def estimate(module, tokens: int, text_cached: bool) -> Optional[MemoryEstimate]:
    """The device memory `module` (a configured-or-not `LynxModule`) will use at ``tokens`` tokens per step;
    None when the base model's shape is not known before loading (``custom`` preset)."""
    from .optimizers import state_bytes_per_weight

    dit = _meta_dit(module)
    if dit is None:
        return None
    base_bytes = {"bf16": 2, "fp16": 2, "fp32": 4}[module.base.dtype]
    fp8 = {id(m) for m in dit.blocks.modules() if type(m) is torch.nn.Linear} if module.base.fp8_storage else set()
    weights = 0.0
    for layer in dit.modules():
        for name, p in layer.named_parameters(recurse=False):
            if name == "weight" and id(layer) in fp8:
                weights += p.numel() + 4 * p.shape[0]
            else:
                weights += p.numel() * base_bytes
    preset = module.base.preset
    text = 0.0 if text_cached else TEXT_ENCODER_PARAMS.get(preset, 0.0) * base_bytes
    n = _trained_params(module, dit)
    w = 2 if module.trainable_dtype == torch.bfloat16 else 4
    optim = module.optim_args
    offloaded = optim.optimizer == "torchao.optim.CPUOffloadOptimizer"
    grads = 0 if offloaded and optim.optimizer_args.get("offload_gradients") else w
    dim, ffn, blocks = int(dit.dim), int(dit.blocks[0].ffn[0].out_features), len(dit.blocks)
    act = 2  # bf16 activations
    if module.gradient_checkpointing:
        inputs = 0.0 if module.gradient_checkpointing == "offload" else blocks * tokens * dim * act
        working = tokens * (WORK_DIM * dim + WORK_FFN * ffn) * act
    else:
        inputs = blocks * tokens * (SAVED_DIM * dim + SAVED_FFN * ffn) * act
        working = tokens * (WORK_DIM * dim + WORK_FFN * ffn) * act
    return MemoryEstimate(base=(weights + VAE_PARAMS * base_bytes) / GIB, text_encoder=text / GIB,
                          trained=n * (w + grads) / GIB, optimizer=n * state_bytes_per_weight(optim.optimizer) / GIB,
                          block_inputs=inputs / GIB, working=working / GIB, context=CONTEXT_BYTES / GIB,
                          tokens=int(tokens))


def _changes(module, est: MemoryEstimate) -> list[tuple[str, float]]:
    """Recipe keys not set yet and about how many GiB each saves."""
    out = []
    if not module.base.fp8_storage and module.base.dtype != "fp32":
        out.append(("--model.base.fp8_storage true", est.base * 0.47))
    if module.optim_args.optimizer in ("torch.optim.AdamW", "torch.optim.Adam"):
        out.append(("--model.optim.optimizer bitsandbytes.optim.AdamW8bit", est.optimizer * 0.75))
    if module.gradient_checkpointing is True:
        out.append(("--model.gradient_checkpointing offload", est.block_inputs))
    if module.trainable_dtype == torch.float32:
        out.append(("--model.trainable_dtype bf16 --model.optim.optimizer torchao.optim.AdamW8bit "
                    "--model.optim.optimizer_args '{bf16_stochastic_round: true}'", est.trained / 2))
    return sorted(out, key=lambda kv: -kv[1])


def check_fits(module, tokens: int, card_bytes: int, card_name: str, text_cached: bool) -> Optional[MemoryEstimate]:
    """Raise `LynxCompatibilityError` when the recipe's estimate does not fit ``card_bytes`` (less the margin);
    the message gives the estimate by part, the options that would save most, and the largest token budget that
    fits as it is. Returns the estimate (None when it cannot be made before loading)."""
    from ..errors import LynxCompatibilityError

    est = estimate(module, tokens, text_cached)
    if est is None:
        return None
    budget = card_bytes / GIB * (1 - MARGIN)
    if est.total <= budget:
        return est
    per_token = (est.block_inputs + est.working) / max(tokens, 1)
    fixed = est.total - est.block_inputs - est.working
    fits_tokens = int((budget - fixed) / per_token) if per_token > 0 and budget > fixed else 0
    hints = [f"{flag} (about -{gib:.0f} GiB)" for flag, gib in _changes(module, est) if gib >= 0.5]
    budget_hint = (f"--data.token_budget {fits_tokens} fits as the recipe is" if fits_tokens >= 1024 else
                   "no token budget fits with these options")
    raise LynxCompatibilityError(
        f"This recipe needs about {est.total:.0f} GiB on the GPU, but {card_name} has {card_bytes / GIB:.0f} GiB: "
        f"{est.describe()}. It would stop with out-of-memory after loading the model. Change: "
        + ("; ".join(hints) if hints else "nothing left to switch on") + f"; or {budget_hint}. The recipes per card "
        "are in docs/training.md (recipes/wan2.1-t2v-14b/: the plain ones fit 80 GB, *_48gb.yaml, *_24gb.yaml). "
        "--model.memory_check false skips this check.")
