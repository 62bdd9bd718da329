"""The optimiser a recipe names by class path (``model.optim.optimizer``), resolved before any weight loads.

Any `torch.optim.Optimizer` subclass importable by its dotted path works; the ones a memory budget calls for:

======================================  =========================================================================
``torch.optim.AdamW``                   the default: two float32 states per trained weight (8 bytes)
``bitsandbytes.optim.AdamW8bit``        block-wise 8-bit states (2 bytes per weight); CUDA and CPU
``torchao.optim.AdamW8bit``             the same idea in torchao (compiled per weight shape on first use)
``torchao.optim.CPUOffloadOptimizer``   states and the step on the CPU (``optimizer_args.optimizer_class``:
                                        the inner optimiser, e.g. ``torch.optim.AdamW``)
======================================  =========================================================================

``model.optim.lr`` / ``weight_decay`` / ``betas`` are handed to the class; ``model.optim.optimizer_args`` adds
keyword arguments (a value under a key ending in ``_class`` is itself a class path).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Iterable

import torch

from ..errors import LynxValueError

# Packages of the optimisers the recipes name (the `train` extra installs them; pip names them the same).
_TRAIN_EXTRA = {"torchao", "bitsandbytes"}
# State bytes per trained weight, for the memory estimate (`memory_plan`); others count as AdamW.
STATE_BYTES = {
    "torch.optim.AdamW": 8.0, "torch.optim.Adam": 8.0, "torch.optim.SGD": 4.0,
    "bitsandbytes.optim.AdamW8bit": 2.0, "bitsandbytes.optim.Adam8bit": 2.0,
    "torchao.optim.AdamW8bit": 2.0, "torchao.optim.Adam8bit": 2.0,
    "torchao.optim.AdamW4bit": 1.0, "torchao.optim.Adam4bit": 1.0, "torchao.optim.AdamWFp8": 2.0,
    "torchao.optim.CPUOffloadOptimizer": 0.0,
}


def import_class(path: str, key: str) -> type:
    """The class at dotted ``path``; a clear error naming the recipe ``key`` otherwise."""
    module_name, _, name = str(path).rpartition(".")
    if not module_name:
        raise LynxValueError(f"{key} = {path!r} is not a class path; write it like torch.optim.AdamW.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        if exc.name and exc.name.split(".")[0] == top:
            hint = (f"install it: pip install {top} (or, in the lynx-ext checkout, "
                    "pip install -c constraints.txt -e '.[train]')") if top in _TRAIN_EXTRA else "check the spelling"
            raise LynxValueError(f"{key} = {path}: the package {top!r} is not installed; {hint}.") from None
        raise
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise LynxValueError(f"{key} = {path}: {module_name} has no class {name!r}.")
    return cls


def resolve_optimizer(path: str, args: dict) -> tuple[type, dict]:
    """``(class, keyword arguments)`` for the recipe's optimiser, checked: an `Optimizer` subclass, and keyword
    arguments it takes."""
    cls = import_class(path, "model.optim.optimizer")
    if not issubclass(cls, torch.optim.Optimizer):
        raise LynxValueError(f"model.optim.optimizer = {path} is not a torch.optim.Optimizer subclass.")
    kwargs = {}
    for name, value in dict(args or {}).items():
        if name.endswith("_class") and isinstance(value, str):
            value = import_class(value, f"model.optim.optimizer_args.{name}")
        kwargs[name] = value
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise LynxValueError(f"model.optim.optimizer_args: {path} takes no argument {', '.join(unknown)}; "
                                  f"it takes {', '.join(n for n in params if n not in ('self', 'params'))}.")
    return cls, kwargs


def build_optimizer(params: Iterable[torch.nn.Parameter], path: str, args: dict, lr: float, weight_decay: float,
                    betas: tuple[float, float]) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``."""
    cls, kwargs = resolve_optimizer(path, args)
    common: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay, "betas": tuple(betas)}
    own = inspect.signature(cls.__init__).parameters
    if "optimizer_class" in own:  # a wrapper (CPU offload): the common arguments go to the inner optimiser
        inner = kwargs.get("optimizer_class", own["optimizer_class"].default)
        own = inspect.signature(inner.__init__).parameters
    common = {k: v for k, v in common.items() if k in own}
    return cls(list(params), **{**common, **kwargs})


def state_bytes_per_weight(path: str) -> float:
    """Optimiser-state bytes per trained weight on the device (AdamW's 8 for classes not in the table)."""
    return STATE_BYTES.get(path, 8.0)
