"""Lightning checkpoints written atomically and read safely.

- Writing goes to a temporary file renamed into place: a crash mid-save never destroys the previous checkpoint;
  temporaries left by a killed run are removed at the next save or resume.
- Reading recognises the file by its content first (`detect_format`): a truncated file, adapter weights or any
  other file given as ``--ckpt_path`` is an error saying what it is. The file is unpickled with
  ``weights_only=True`` only (tensors and plain values; nothing executes).
- Resuming from ``last.ckpt`` never goes back further than a complete newer step checkpoint beside it (a run
  killed between writing ``...-step=N.ckpt`` and refreshing ``last.ckpt``): that newer one is used, with a note.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic_write import atomic_path
from ..errors import LynxFileError, LynxFormatError, LynxMissingFileError

STEP_RE = re.compile(r"(?:^|[-_])step=?(\d+)")  # Lightning's "-step=N" or the recipes' "stepNNNNNNN"
TEMPORARY_GLOB = ".*.tmp.ckpt"  # `atomic_path` names: .<name>.<random>.tmp.ckpt


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete partial checkpoints a killed save left in ``folder``; returns what was removed."""
    removed = []
    for tmp in sorted(Path(folder).glob(TEMPORARY_GLOB)) if Path(folder).is_dir() else []:
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def check_checkpoint_file(path: Path) -> None:
    """Refuse anything that is not a Lightning training checkpoint, saying what it is."""
    from ..adapters.formats.detect import FormatKind, detect_format

    found = detect_format(path)
    if found.kind is FormatKind.MISSING:
        raise LynxMissingFileError(f"Checkpoint {path} does not exist. Pass a .ckpt file from "
                            "<default_root_dir>/lightning_logs/version_N/checkpoints/ (e.g. last.ckpt).")
    if found.kind is not FormatKind.LIGHTNING:
        raise LynxFormatError(
            f"{path} is {found.description}, not a training checkpoint written by `diffsynth-ext fit` (a Lightning "
            ".ckpt). Pass last.ckpt or a step checkpoint from <default_root_dir>/lightning_logs/version_N/"
            "checkpoints/; exported adapters go to --model.adapters.init_from instead.")


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` that writes atomically and reads checked, ``weights_only`` checkpoints."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        remove_temporaries(path.parent)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, str(tmp))

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage,
                        weights_only: Optional[bool] = None) -> dict:
        path = Path(path)
        remove_temporaries(path.parent)
        checkpoint = self._read(path, map_location)
        if path.name.startswith("last"):
            newer = self._newer_than(path, int(checkpoint.get("global_step", -1)), map_location)
            if newer is not None:
                return newer
        return checkpoint

    def _read(self, path: Path, map_location) -> dict:
        check_checkpoint_file(path)
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file: say so in one line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise LynxFormatError(f"{path} could not be read as a training checkpoint ({type(err).__name__}: "
                                  f"{first}). It may be damaged; resume from another checkpoint beside it.") from None
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise LynxFormatError(f"{path} holds no training state (no state_dict); pass a checkpoint written by "
                                  "`diffsynth-ext fit`.")
        return checkpoint

    def _newer_than(self, last: Path, step: int, map_location) -> Optional[dict]:
        """The newest complete step checkpoint beside ``last`` whose step is after ``step`` (None if none)."""
        from lightning.pytorch.utilities import rank_zero_warn

        candidates = []
        for other in last.parent.glob("*.ckpt"):
            match = STEP_RE.search(other.stem)
            if match and not other.name.startswith((".", "last")) and int(match.group(1)) > step:
                candidates.append((int(match.group(1)), other))
        for found_step, other in sorted(candidates, reverse=True):
            try:
                checkpoint = self._read(other, map_location)
            except (LynxFileError, LynxFormatError) as err:
                rank_zero_warn(f"{other} is newer than {last.name} but unreadable ({err}); skipping it.")
                continue
            if int(checkpoint.get("global_step", -1)) > step:
                rank_zero_warn(f"{last.name} is at step {step}, but {other.name} (step {checkpoint['global_step']}) "
                               f"is newer and complete; resuming from {other.name}.")
                return checkpoint
        return None
