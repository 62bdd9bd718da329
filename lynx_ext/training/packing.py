"""Spatio-temporal frame packing: samples of different sizes and durations under a token budget per batch."""
from __future__ import annotations

import math
import warnings
from typing import Iterator, Sequence

import torch


def latent_tokens(num_frames: int, height: int, width: int, patch: int = 16) -> int:
    """DiT tokens of one sample: latent frames (4x temporal) x (H/16) x (W/16) (VAE 8x, patch 2x)."""
    return ((num_frames - 1) // 4 + 1) * math.ceil(height / patch) * math.ceil(width / patch)


class TokenBudgetBatchSampler:
    """Yields packs (lists of dataset indices) whose total token count stays within ``budget``.

    Order is a deterministic function of ``(seed, epoch)``; packs are dealt round-robin to ``num_replicas``
    ranks (truncated so every rank gets the same number). ``skip`` resumes mid-epoch exactly.
    """

    def __init__(self, token_counts: Sequence[int], budget: int, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, on_epoch=None):
        if budget <= 0:
            raise ValueError(f"The token budget must be positive, got {budget}.")
        self.token_counts = [int(t) for t in token_counts]
        self.budget, self.shuffle, self.seed = int(budget), shuffle, int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self.skip = 0, 0
        self.on_epoch = on_epoch  # e.g. tells the dataset the epoch (its augmentation seed)
        too_big = [i for i, t in enumerate(self.token_counts) if t > budget]
        if too_big:
            warnings.warn(f"{len(too_big)} samples exceed the token budget ({budget}) on their own; each is packed "
                          "alone. Raise data.token_budget or lower their size.", stacklevel=2)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)

    def packs(self) -> list[list[int]]:
        """All packs of the current epoch (before sharding)."""
        n = len(self.token_counts)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch)).tolist()
        else:
            order = list(range(n))
        packs, current, used = [], [], 0
        for i in order:
            t = self.token_counts[i]
            if current and used + t > self.budget:
                packs.append(current)
                current, used = [], 0
            current.append(i)
            used += t
        if current:
            packs.append(current)
        return packs

    def _mine(self) -> list[list[int]]:
        packs = self.packs()
        while len(packs) < self.num_replicas and any(len(p) > 1 for p in packs):
            big = max(range(len(packs)), key=lambda k: len(packs[k]))  # give every rank work: split the largest
            p = packs.pop(big)
            packs[big:big] = [p[: len(p) // 2], p[len(p) // 2:]]
        per_rank = len(packs) // self.num_replicas if self.num_replicas > 1 else len(packs)
        return packs[self.rank::self.num_replicas][:per_rank]

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._mine()
        start, self.skip = self.skip, 0
        yield from mine[start:]

    def __len__(self) -> int:
        return len(self._mine())


def sample_tokens(sample: dict) -> int:
    """DiT tokens of one training sample: from its cached latents ``[C, f, h, w]`` or its clip ``[3, F, H, W]``."""
    if sample.get("latents") is not None:
        f, h, w = sample["latents"].shape[-3:]
        return int(f) * math.ceil(int(h) / 2) * math.ceil(int(w) / 2)
    _, frames, height, width = sample["video"].shape
    return latent_tokens(int(frames), int(height), int(width))


def pack_tokens(pack: list[dict]) -> int:
    """DiT tokens of a pack (what ``data.token_budget`` bounds)."""
    return sum(sample_tokens(s) for s in pack)
