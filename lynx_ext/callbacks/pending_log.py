"""A resumed run's log is as complete as its state: the step metrics that a checkpoint's state includes, but that
Lightning writes to the loggers only after the checkpoint, travel in the checkpoint and are logged on resume.

Lightning saves a step checkpoint in ``on_train_batch_end`` and logs that batch's metrics (``train/loss``, ...)
afterwards. A run killed in between (e.g. while ``last.ckpt`` is written) loses that step's line of the log,
although its update is in the checkpoint; the resumed run starts at the next batch. `fit` adds this callback to
every run: the resumed run logs the pending metrics at their own step first, so from the checkpoint on every step
is in its log once.
"""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.apply_func import convert_tensors_to_scalars

KEY = "lynx_pending_step_log"  # in the checkpoint: {"step": int, "metrics": {name: float}}


def pending_step_metrics(trainer) -> dict[str, Any] | None:
    """The metrics Lightning will write to the loggers once the hook now running returns: in a batch's end, that
    batch's step metrics (none when ``log_every_n_steps`` skips this step or gradients are still accumulating); at
    an epoch's end, the epoch metrics if the module logs any (ours log none); outside training, none."""
    if not trainer.training or trainer.fit_loop._should_accumulate():
        return None
    connector = trainer._logger_connector
    if not connector.should_update_logs:
        return None
    metrics = convert_tensors_to_scalars(dict(connector.metrics["log"]))
    if not metrics:
        return None
    metrics.setdefault("epoch", trainer.current_epoch)  # as Lightning adds it
    return {"step": int(trainer.fit_loop.epoch_loop._batches_that_stepped), "metrics": metrics}


class PendingStepLog(pl.Callback):
    """Carry a checkpoint's not-yet-logged step metrics into the run resumed from it (see the module)."""

    def __init__(self):
        self._resumed: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        pending = pending_step_metrics(trainer)
        if pending is not None:
            checkpoint[KEY] = pending

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._resumed = checkpoint.get(KEY)

    def on_train_start(self, trainer, pl_module) -> None:
        pending, self._resumed = self._resumed, None
        if pending is None:
            return
        for logger in trainer.loggers:  # loggers write on the first process only
            logger.log_metrics(pending["metrics"], step=pending["step"])
            logger.save()
