"""`LynxDataModule`: packed batches from a prepared cache, with exact mid-epoch resumption."""
from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import lightning.pytorch as pl
import torch

from .args import AugmentArgs, DropoutArgs, SampleSpec
from .dataset import LynxTrainingDataset, collate_pack
from .packing import TokenBudgetBatchSampler


class LynxDataModule(pl.LightningDataModule):
    """Training data for `LynxModule`.

    Args:
        cache: a folder written by ``diffsynth-ext prepare --extension lynx``.
        token_budget: DiT tokens per batch (per GPU); samples of any size are packed up to it.
        sample: frames, resolution buckets, stride, image-only mode.
        augment: identity-image augmentation.
        dropout: condition dropout rates.
        shuffle: shuffle the sample order every epoch (deterministically from ``seed``).
        num_workers: DataLoader workers (0 keeps resumption exact to the batch).
        seed: data-order and augmentation seed.
    """

    def __init__(self, cache: str, token_budget: int = 32760, sample: SampleSpec = SampleSpec(),
                 augment: AugmentArgs = AugmentArgs(), dropout: DropoutArgs = DropoutArgs(), shuffle: bool = True,
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.cache, self.token_budget = cache, int(token_budget)
        self.sample, self.augment, self.dropout = sample, augment, dropout
        self.shuffle, self.num_workers, self.seed = shuffle, int(num_workers), int(seed)
        self.dataset: Optional[LynxTrainingDataset] = None
        self.batches_done = 0
        self._resume: Optional[dict] = None

    def setup(self, stage: Optional[str] = None) -> None:
        if self.dataset is None:
            self.dataset = LynxTrainingDataset(self.cache, self.sample, self.augment, self.dropout, seed=self.seed)

    def train_dataloader(self):
        self.setup()
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        epoch = trainer.current_epoch if trainer is not None else 0
        sampler = TokenBudgetBatchSampler(self.dataset.token_counts(), self.token_budget, shuffle=self.shuffle,
                                          seed=self.seed, num_replicas=world, rank=rank,
                                          on_epoch=lambda e: setattr(self.dataset, "epoch", e))
        sampler.set_epoch(epoch)
        if self._resume is not None and self._resume.get("epoch") == epoch:
            sampler.skip = int(self._resume.get("batches_done", 0))
            self.batches_done = sampler.skip
        else:
            self.batches_done = 0
        self._resume = None
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate_pack,
                                           num_workers=self.num_workers)

    # Lightning stores these in every checkpoint and restores them before the dataloader is rebuilt.
    def state_dict(self) -> dict:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return {"epoch": epoch, "batches_done": self.batches_done, "sample": asdict(self.sample), "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)
