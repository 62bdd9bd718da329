"""The DiT LoRA trained beside the adapters (``model.lora_rank > 0``), in the host's LoRA file layout.

DiffSynth's ``pipe.load_lora(pipe.dit, path)`` (what ``diffsynth-ext generate --lora`` calls) reads
``<module>.lora_A.weight`` / ``<module>.lora_B.weight`` pairs named by the DiT's module paths and fuses
``alpha * B @ A`` into ``<module>.weight``; peft's scaling (``lora_alpha / r``) is folded into ``B`` so the fused
weight equals the trained one at ``alpha = 1``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch


def dit_lora_state_dict(dit: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The peft LoRA injected into ``dit`` as host-layout tensors (float32, CPU); {} when there is none."""
    from peft.tuners.lora import LoraLayer

    out: dict[str, torch.Tensor] = {}
    for name, module in dit.named_modules():
        if not isinstance(module, LoraLayer) or not module.lora_A:
            continue
        adapters = list(module.lora_A.keys())
        if len(adapters) != 1:
            raise ValueError(f"{name} holds {len(adapters)} LoRA adapters ({adapters}); export supports one.")
        a = adapters[0]
        out[f"{name}.lora_A.weight"] = module.lora_A[a].weight.detach().float().cpu().contiguous()
        out[f"{name}.lora_B.weight"] = (module.lora_B[a].weight.detach().float() * module.scaling[a]).cpu().contiguous()
    return out


def save_dit_lora(dit: torch.nn.Module, path: str | Path, metadata: Optional[dict] = None) -> Optional[Path]:
    """Write `dit_lora_state_dict` to ``path`` (safetensors, atomically); None when the DiT has no LoRA."""
    from safetensors.torch import save_file

    from ..atomic_write import atomic_path

    tensors = dit_lora_state_dict(dit)
    if not tensors:
        return None
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path
