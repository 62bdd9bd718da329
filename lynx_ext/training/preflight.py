"""What a training run is given, checked before any model loads (``fit``'s ``before_fit``): the prepared dataset
exists and its face embeddings have the size the adapters take; a stage-1 export to start from is adapter weights
of the recipe's variant and embedding size."""
from __future__ import annotations

import json
from pathlib import Path

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
