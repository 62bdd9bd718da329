"""Counts the batches a run has consumed in the current epoch, so a resumed run skips exactly those."""
from __future__ import annotations

import lightning.pytorch as pl


class DataProgress(pl.Callback):
    """Added by the CLI to every run; keeps `LynxDataModule.batches_done` in step with optimisation steps."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "batches_done"):
            dm.batches_done += 1
