"""Progressive training inside one run: change frames, resolution buckets or token budget at given steps."""
from __future__ import annotations

from typing import Optional

import lightning.pytorch as pl


class StageSchedule(pl.Callback):
    """``stages`` is a list of ``{"start_step": int, "num_frames": int?, "buckets": [[h, w], ...]?,
    "token_budget": int?, "images_only": bool?}``; from ``start_step`` on, the data module uses those values
    (applied at the next epoch boundary, when the sampler is rebuilt, or immediately when set at step 0).
    """

    def __init__(self, stages: list[dict]):
        allowed = {"start_step", "num_frames", "buckets", "token_budget", "images_only"}
        for s in stages:
            bad = set(s) - allowed
            if bad:
                raise ValueError(f"StageSchedule: unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}.")
            if "start_step" not in s:
                raise ValueError("StageSchedule: every stage needs a start_step.")
        self.stages = sorted(stages, key=lambda s: int(s["start_step"]))
        self.current: Optional[int] = None

    def active(self, step: int) -> Optional[int]:
        idx = None
        for i, s in enumerate(self.stages):
            if step >= int(s["start_step"]):
                idx = i
        return idx

    def apply(self, trainer) -> None:
        idx = self.active(trainer.global_step)
        if idx is None or idx == self.current:
            return
        dm, stage = trainer.datamodule, self.stages[idx]
        if "num_frames" in stage:
            dm.sample.num_frames = int(stage["num_frames"])
        if "buckets" in stage:
            dm.sample.buckets = [tuple(b) for b in stage["buckets"]]
        if "images_only" in stage:
            dm.sample.images_only = bool(stage["images_only"])
        if "token_budget" in stage:
            dm.token_budget = int(stage["token_budget"])
        self.current = idx

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.apply(trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.apply(trainer)

    def state_dict(self) -> dict:
        return {"current": self.current}

    def load_state_dict(self, state_dict: dict) -> None:
        self.current = state_dict.get("current")
