"""What a training run is given, checked before any model loads (``fit``'s ``before_fit``): the device the recipe
trains on is there, the prepared dataset exists (a missing one names the step that builds it) and its face
embeddings have the size the adapters take; a stage-1 export to start from is adapter weights of the recipe's
variant and embedding size."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..validation.models import adapter_facts, check_embedder_fits


TINY_RECIPE = "recipes/tiny/tiny_cpu.yaml"
TINY_DATA = "python -m lynx_ext.training.tiny_data"


def check_accelerator(accelerator) -> None:
    """A recipe that trains on a GPU (``trainer.accelerator: gpu`` / ``cuda``) on a machine without one is refused
    saying so, and pointing to the recipe that trains on a CPU (Lightning would say "No supported gpu backend")."""
    name = str(accelerator or "").lower()
    if name not in ("gpu", "cuda") or gpu_present(mps=name == "gpu"):
        return
    from ..errors import LynxCompatibilityError

    raise LynxCompatibilityError(
        f"This recipe trains on a CUDA GPU (trainer.accelerator: {accelerator}), and this machine has none (torch "
        "sees no CUDA device). Run it on a machine with CUDA GPUs. To try "
        f"training on this CPU, use the tiny recipe: `{TINY_DATA} outputs/tiny_data`, then `diffsynth-ext fit "
        f"--extension lynx --config {TINY_RECIPE}`.")


def gpu_present(mps: bool = True) -> bool:
    """Whether torch sees a CUDA device (or, with ``mps``, Apple's GPU: Lightning's "gpu" takes either)."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or (mps and backend is not None and backend.is_available())


def check_prepared_cache(cache: Path, preset=None) -> None:
    """``cache`` is a prepared dataset; if not, the error names the step that builds it: `prepare` for a real base
    model, the tiny astronaut set (`lynx_ext.training.tiny_data`, which writes ``DIR/prepared``) for a tiny-preset
    recipe reading such a ``prepared`` folder."""
    from .data.prepare import DatasetError, read_prepared

    try:
        read_prepared(cache)
    except DatasetError:
        if preset != "tiny" or cache.name != "prepared":  # a dataset of your own: `prepare` builds its cache
            raise
        folder = cache.parent
        raise DatasetError(f"{cache} does not exist: the tiny recipe trains on the tiny astronaut set. Build it with "
                           f"`{TINY_DATA} {folder}` (it writes {folder}/prepared, {folder}/dataset and "
                           f"{folder}/validation_pairs.yaml), then run fit again.") from None


def check_training_inputs(module, datamodule) -> None:
    """Refuse a recipe whose data, adapters and embedder do not fit, naming what to change.

    ``module``: a `LynxModule` (not configured yet); ``datamodule``: a `LynxDataModule`.
    """
    from ..errors import LynxCompatibilityError
    from .data.prepare import CONFIG_NAME, read_prepared

    cache = Path(datamodule.cache)
    check_prepared_cache(cache, getattr(module.base, "preset", None))
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
    from .encoding_cache import has_text_encodings
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
    check_fits(module, tokens, card[0], card[1], text_cached=has_text_encodings(datamodule.cache))
