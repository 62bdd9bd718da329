"""A progress bar over the whole run (optimisation steps out of ``max_steps``), not over one epoch."""
from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf


def run_total_steps(trainer) -> int | None:
    """The steps this run will take: ``max_steps``, else Lightning's estimate from the epochs and the sampler's length
    (None when neither is known, e.g. an endless run)."""
    if trainer.max_steps is not None and trainer.max_steps > 0:
        return int(trainer.max_steps)
    try:
        return convert_inf(trainer.estimated_stepping_batches)
    except Exception:  # noqa: BLE001 - no length to estimate from: show a bar without a total
        return None


class StepProgressBar(TQDMProgressBar):
    """``step 120/20000 [eta, loss, tokens/s]``: one bar for the run, started at the resumed step.

    Lightning's default bar counts the batches of one epoch, and its title reads ``Epoch 1/-2`` when the run is
    bounded by ``max_steps``; with token-budget packing an epoch's length is not what the user set. The CLI adds this
    bar to every run that has a progress bar.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(total=run_total_steps(trainer))
        self.train_progress_bar.initial = 0
        self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description("step")
        self.train_progress_bar.refresh()

    def on_train_epoch_start(self, trainer, *_) -> None:
        if self.train_progress_bar is not None and not self.train_progress_bar.disable:
            self.train_progress_bar.set_description(f"step (epoch {trainer.current_epoch})")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        bar, n = self.train_progress_bar, trainer.global_step
        if bar is not None and self._should_update(n, bar.total):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.train_progress_bar is not None and not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
