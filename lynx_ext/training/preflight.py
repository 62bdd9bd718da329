"""What a training run is given, checked before any model loads (``fit``'s ``before_fit``): the prepared dataset
exists and its face embeddings have the size the adapters take; a stage-1 export to start from is adapter weights
of the recipe's variant and embedding size."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..validation.models import adapter_facts, check_embedder_fits


def check_training_inputs(module, datamodule) -> None:
    """Refuse a recipe whose data, adapters and embedder do not fit, naming what to change.

    ``module``: a `LynxModule` (not configured yet); ``datamodule``: a `LynxDataModule`.
    """
    from ..errors import LynxCompatibilityError
    from .data.prepare import CONFIG_NAME, read_prepared

    cache = Path(datamodule.cache)
    read_prepared(cache)  # the folder is a prepared dataset (a clear error otherwise)
    args = module.adapter_args
    want, label = int(args.embedding_dim), f"the recipe's adapters (model.adapters.embedding_dim {args.embedding_dim})"
    if args.init_from:
        facts = adapter_facts(args.init_from)
        if facts.variant is not None and facts.variant != args.variant:
            raise LynxCompatibilityError(f"model.adapters.init_from {args.init_from} holds {facts.variant} adapters but "
                                         f"model.adapters.variant is {args.variant}; make them the same.")
        if facts.embedding_dim is not None:
            want, label = facts.embedding_dim, f"the adapters of model.adapters.init_from ({facts.label})"
    config_path = cache / CONFIG_NAME
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    got = config.get("embedding_dim")
    check_embedder_fits(f"{config.get('embedder', '?')} (used by `prepare` for {cache})",
                        int(got) if isinstance(got, int) else None, want, label)


def card_memory(trainer) -> Optional[tuple[int, str]]:
    """``(bytes, name)`` of the CUDA card ``trainer`` will train on; None on other accelerators."""
    import torch
    from lightning.pytorch.accelerators import CUDAAccelerator

    if not isinstance(getattr(trainer, "accelerator", None), CUDAAccelerator):
        return None
    device = trainer.strategy.root_device
    props = torch.cuda.get_device_properties(device)
    return int(props.total_memory), f"{device} ({props.name})"


def check_training_memory(module, datamodule, trainer=None, card: Optional[tuple[int, str]] = None) -> None:
    """Refuse, before any weight loads, a recipe whose estimated GPU memory exceeds the card it will run on
    (`memory_plan.check_fits`; ``model.memory_check false`` skips it). ``card``: ``(bytes, name)``, by default
    the trainer's CUDA card (no check on the CPU)."""
    from .encoding_cache import TEXT_DIR
    from .memory_plan import check_fits

    if not module.memory_check:
        return
    card = card or card_memory(trainer)
    if card is None:
        return
    tokens = int(datamodule.token_budget)
    for cb in getattr(trainer, "callbacks", None) or []:  # a later stage of a StageSchedule may pack more
        for stage in getattr(cb, "stages", None) or []:
            if isinstance(stage, dict) and "token_budget" in stage:
                tokens = max(tokens, int(stage["token_budget"]))
    text = Path(datamodule.cache) / TEXT_DIR
    check_fits(module, tokens, card[0], card[1], text_cached=text.is_dir() and any(text.iterdir()))
