"""Exponential moving average of the trained weights (saved in checkpoints, used by exports and samples)."""
from __future__ import annotations

import contextlib

import lightning.pytorch as pl
import torch


class AdapterEMA(pl.Callback):
    """Keeps ``ema = decay * ema + (1 - decay) * weight`` for every trainable parameter after each step.

    Args:
        decay: EMA decay.
        start_step: steps before which the EMA just copies the weights.
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"AdapterEMA.decay must be in (0, 1), got {decay}.")
        self.decay, self.start_step = float(decay), int(start_step)
        self.shadow: dict[str, torch.Tensor] = {}

    def _params(self, pl_module):
        return dict(pl_module.trainable_named_parameters())

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        params = self._params(pl_module)
        decay = 0.0 if trainer.global_step <= self.start_step else self.decay
        for name, p in params.items():
            current = p.detach().float()
            if name not in self.shadow:
                self.shadow[name] = current.clone()
            else:
                self.shadow[name].mul_(decay).add_(current.to(self.shadow[name].device), alpha=1 - decay)

    @contextlib.contextmanager
    def applied(self, pl_module):
        """Temporarily put the EMA weights into the module (for exports and samples)."""
        params = self._params(pl_module)
        saved = {n: p.detach().clone() for n, p in params.items() if n in self.shadow}
        with torch.no_grad():
            for n, p in params.items():
                if n in self.shadow:
                    p.copy_(self.shadow[n].to(device=p.device, dtype=p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    if n in saved:
                        p.copy_(saved[n])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.shadow = {k: v.clone() for k, v in state_dict.get("shadow", {}).items()}


def find_ema(trainer):
    return next((c for c in trainer.callbacks if isinstance(c, AdapterEMA)), None)


def maybe_ema(trainer, pl_module):
    ema = find_ema(trainer)
    return ema.applied(pl_module) if ema is not None and ema.shadow else contextlib.nullcontext()
