"""Where a training run's outputs are: its own version folder, and what `fit` says about it at the end.

Every run writes only under its own folder, ``<default_root_dir>/lightning_logs/version_N/`` (the logger's, where
Lightning puts the run's checkpoints and config): a second run (a re-run from the saved config, a resumed run) gets
``version_N+1`` and never overwrites the first's files. ``<default_root_dir>/adapters/latest`` is the one stable
path: it points at the adapter export of the run that finished last (stage 2 starts from it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

LATEST = "latest"  # <default_root_dir>/adapters/latest


def run_folder(trainer) -> Path:
    """The run's own folder (no collective call; rank 0's answer is the one that counts).

    With a logger: ``<save_dir>/<name>/version_N`` (where Lightning's checkpoint callback writes ``checkpoints/``).
    Without one: the next free ``<default_root_dir>/lightning_logs/version_N``.
    """
    root = Path(trainer.default_root_dir)
    if trainer.loggers:
        logger = trainer.loggers[0]
        version = logger.version
        version = version if isinstance(version, str) else f"version_{version}"
        return Path(logger.save_dir or root) / str(logger.name or "") / version
    folder = root / "lightning_logs"
    taken = {p.name for p in folder.glob("version_*")} if folder.is_dir() else set()
    n = 0
    while f"version_{n}" in taken:
        n += 1
    return folder / f"version_{n}"


def latest_pointer(trainer) -> Path:
    """``<default_root_dir>/adapters/latest``: the stable path of the last finished run's export."""
    return Path(trainer.default_root_dir) / "adapters" / LATEST


def _shown(path: Path) -> str:
    try:
        return str(path.absolute().relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(path)


def describe_run(trainer) -> Optional[str]:
    """A few lines naming what the run wrote, for the end of `fit` (only paths that exist; None if nothing)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    exporters = [cb for cb in trainer.callbacks if isinstance(getattr(cb, "run_folder", None), Path)]
    folder = run_folder(trainer) if trainer.loggers or not exporters else exporters[0].run_folder
    rows: list[tuple[str, str]] = []
    if folder.is_dir():
        rows.append(("run folder", _shown(folder)))
    for cb in trainer.checkpoint_callbacks:
        path = Path(cb.dirpath) if getattr(cb, "dirpath", None) else None
        if path is not None and path.is_dir() and (_shown(path) not in {r[1] for r in rows if r[0] == "checkpoints"}):
            rows.append(("checkpoints", _shown(path)))
    best = [Path(cb.best_model_path) for cb in trainer.checkpoint_callbacks
            if getattr(cb, "monitor", None) not in (None, "step") and getattr(cb, "best_model_path", "")]
    rows += [("best checkpoint", _shown(p)) for p in best if p.is_file()]
    latest, ours = latest_pointer(trainer), False
    for cb in trainer.callbacks:
        export = getattr(cb, "last_export", None)  # an AdapterExport's newest export
        if isinstance(export, Path) and export.is_dir():
            rows.append(("adapters", f"{_shown(export.parent)} (newest export {export.name}/, a copy in last/)"))
            ours = ours or (latest.exists() and latest.resolve() == (export.parent / "last").resolve())
    if ours:  # only when it leads to this run's export (a failed run does not move it)
        rows.append(("latest adapters", _shown(latest)))
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and Path(logger.log_dir).is_dir():
            rows.append(("TensorBoard", f"tensorboard --logdir {_shown(Path(logger.log_dir))}"))
    config = folder / "config.yaml"
    if config.is_file():
        command = f"diffsynth-ext fit --extension lynx --config {_shown(config)}"
        rows.append(("repeat", command))
        lasts = [Path(cb.last_model_path) for cb in trainer.checkpoint_callbacks
                 if getattr(cb, "last_model_path", "")]
        last = next((p for p in lasts if p.is_file()), None)
        if last is not None:
            rows.append(("resume", f"{command} --ckpt_path {_shown(last)}"))
    if not rows:
        return None
    width = max(len(name) for name, _ in rows)
    return "\n".join(["Run outputs:"] + [f"  {name + ':':<{width + 1}} {value}" for name, value in rows])
