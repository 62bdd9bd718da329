"""Training throughput: DiT tokens and samples per second, step and data-wait times (logged every step)."""
from __future__ import annotations

import time

import lightning.pytorch as pl

from ..training.packing import pack_tokens


class Throughput(pl.Callback):
    """Logs ``train/tokens_per_s`` and ``train/samples_per_s`` (all ranks together), ``train/step_time_s`` (forward,
    backward and optimiser step of this rank) and ``train/data_time_s`` (waiting for the batch).

    Tokens are the DiT's video tokens of the pack (`pack_tokens`), the unit of ``data.token_budget``.
    """

    def __init__(self):
        self._start: float | None = None
        self._end: float | None = None
        self.last: dict[str, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._start is None:
            return
        step = max(now - self._start, 1e-9)
        data = self._start - self._end if self._end is not None else 0.0
        self._end = now
        tokens, samples = float(pack_tokens(batch)), float(len(batch))
        self.last = {"train/tokens_per_s": tokens / step, "train/samples_per_s": samples / step,
                     "train/step_time_s": step, "train/data_time_s": data}
        sync = trainer.world_size > 1
        for name, value in self.last.items():
            summed = name.endswith("_per_s")  # rates add up over ranks; times are this rank's
            pl_module.log(name, value, batch_size=len(batch), sync_dist=sync,
                          reduce_fx="sum" if summed else "mean", prog_bar=name == "train/tokens_per_s")
