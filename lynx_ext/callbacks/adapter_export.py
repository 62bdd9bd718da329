"""Writes the trained adapters in the official file layout and in ours (atomically), every N steps and at the end,
with the DiT LoRA when one is trained, and optionally pushes the last export to the Hugging Face hub."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Optional, Sequence

import lightning.pytorch as pl

from .ema import maybe_ema


class AdapterExport(pl.Callback):
    """Export ``pipe.lynx`` (the EMA weights when an `AdapterEMA` runs).

    Writes ``{dirpath}/step-{N}/lynx_adapters.safetensors`` (our format, loadable by ``--adapters``),
    ``{dirpath}/step-{N}/lynx_{variant}/`` (the official layout) and, when the DiT has a LoRA
    (``model.lora_rank > 0``), ``{dirpath}/step-{N}/dit_lora.safetensors`` (the host's LoRA layout, loadable by
    ``--lora``); then refreshes ``{dirpath}/last/``. At the end of training,
    ``<default_root_dir>/adapters/latest`` is pointed at this run's ``last/`` (a symlink swapped in atomically; a
    copy where the file system has no symlinks): the stable path of the last finished run's export.

    Args:
        dirpath: export folder (default: the run's own ``<default_root_dir>/lightning_logs/version_N/adapters``,
            so a re-run or a resumed run never overwrites an earlier run's exports).
        every_n_train_steps: export period (0: only at the end).
        formats: any of ``"lynx_ext"``, ``"official"``.
        stage: a label stored in the file metadata (e.g. ``stage1_image``).
        push_to_hub: a hub model repo ``OWNER/NAME``: at the end of training, push the final export with a
            generated model card (`lynx_ext.training.hub_push`). A failed push (offline, no token) warns with the
            command to push later; the export on disk is unaffected.
        hub_private: create the hub repo private.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0,
                 formats: Sequence[str] = ("lynx_ext", "official"), stage: str = "",
                 push_to_hub: Optional[str] = None, hub_private: bool = True):
        bad = set(formats) - {"lynx_ext", "official"}
        if bad:
            raise ValueError(f"AdapterExport.formats: unknown {sorted(bad)}; use 'lynx_ext' and/or 'official'.")
        if push_to_hub is not None and (push_to_hub.count("/") != 1 or not all(push_to_hub.split("/"))):
            raise ValueError(f"AdapterExport.push_to_hub: {push_to_hub!r} is not a hub repo id; use OWNER/NAME.")
        self.dirpath, self.every = dirpath, int(every_n_train_steps)
        self.formats, self.stage = tuple(formats), stage
        self.push_to_hub, self.hub_private = push_to_hub, bool(hub_private)
        self.last_export: Path | None = None
        self.pushed: Optional[str] = None
        self.run_folder: Path | None = None  # the run's version folder, set when the run starts

    def setup(self, trainer, pl_module, stage: str) -> None:
        from ..training.run_folder import run_folder

        # on every process (a collective), before any export: the run's own version folder
        self.run_folder = Path(trainer.strategy.broadcast(str(run_folder(trainer)), src=0))

    def folder(self, trainer) -> Path:
        if self.dirpath:
            return Path(self.dirpath)
        if self.run_folder is None:
            from ..training.run_folder import run_folder

            self.run_folder = run_folder(trainer)
        return self.run_folder / "adapters"

    def export(self, trainer, pl_module) -> Path:
        from ..adapters.formats import save_official_folder
        from ..training.hub_push import LORA_FILE
        from ..training.lora_export import save_dit_lora

        out = self.folder(trainer) / f"step-{trainer.global_step:07d}"
        adapters = pl_module.pipe.lynx
        meta = {"stage": self.stage, "step": trainer.global_step, "variant": adapters.config.variant,
                "recipe_fingerprint": pl_module.recipe_fingerprint(),
                "base_model": json.dumps(pl_module.hparams.get("base", {}), default=str)}
        with maybe_ema(trainer, pl_module):
            if "lynx_ext" in self.formats:
                adapters.save(out / "lynx_adapters.safetensors", metadata=meta)
            if "official" in self.formats:
                save_official_folder(adapters, out / f"lynx_{adapters.config.variant}")
            save_dit_lora(pl_module.pipe.dit, out / LORA_FILE, metadata=meta)
        refresh_last(self.folder(trainer) / "last", out)
        self.last_export = out
        return out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0 and trainer.is_global_zero:
            self.export(trainer, pl_module)

    def push(self, folder: Path) -> Optional[str]:
        """Push ``folder`` to ``push_to_hub``; returns the URL, or None (with a warning) when the push failed."""
        from ..training.hub_push import HubPushError, push_adapters

        try:
            self.pushed = push_adapters(folder, self.push_to_hub, private=self.hub_private)
        except HubPushError as err:
            warnings.warn(str(err), stacklevel=2)
            return None
        return self.pushed

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            from ..training.run_folder import latest_pointer

            out = self.export(trainer, pl_module)
            point_latest(latest_pointer(trainer), self.folder(trainer) / "last")
            if self.push_to_hub:
                self.push(out)


def point_latest(latest: Path, target: Path) -> None:
    """Make ``latest`` lead to ``target``: a relative symlink swapped in with one atomic rename; a copy refreshed
    atomically (`refresh_last`) where the file system has no symlinks or ``latest`` is such a copy already."""
    latest.parent.mkdir(parents=True, exist_ok=True)
    link = latest.with_name(f".{latest.name}.link")
    if link.is_symlink() or link.exists():
        link.unlink()
    copy = latest.is_dir() and not latest.is_symlink()
    if not copy:
        try:
            os.symlink(os.path.relpath(target, latest.parent), link, target_is_directory=True)
        except (OSError, NotImplementedError):
            copy = True
    if copy:
        refresh_last(latest, target)
    else:
        os.replace(link, latest)


def refresh_last(last: Path, export: Path) -> None:
    """Make ``last`` a copy of ``export``: the copy is built beside it, then swapped in with one atomic exchange
    (Linux ``renameat2(RENAME_EXCHANGE)``), else renamed in before the old one is deleted; a ``last`` lost between
    two renames by a kill elsewhere is restored from ``.last.old`` first (``.<name>.old`` for another name)."""
    old, tmp = last.with_name(f".{last.name}.old"), last.with_name(f".{last.name}.tmp")
    if not last.exists() and old.is_dir():
        old.rename(last)  # a previous export was killed between its two renames
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(export, tmp)
    if last.is_dir() and _exchange(tmp, last):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old export
        return
    if last.exists():
        last.rename(old)
    tmp.rename(last)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange)
    return result == 0
