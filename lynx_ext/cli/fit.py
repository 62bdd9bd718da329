"""``diffsynth-ext fit --extension lynx --config recipes/....yaml [--key value ...]`` (LightningCLI).

The recipe is validated before any weight loads: an unknown or misspelt key fails, naming the key.
"""
from __future__ import annotations

import sys
from typing import Optional


def make_cli(args: list[str], run: bool = True):
    from lightning.pytorch.cli import LightningCLI

    from ..training.checkpoint_io import AtomicCheckpointIO
    from ..training.datamodule import LynxDataModule
    from ..training.module import LynxModule

    class LynxCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("model.seed", "data.seed")

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would silently replace the recipe by the checkpoint's hyper-parameters. The recipe stays
            # the source of truth; `LynxModule.on_load_checkpoint` refuses a checkpoint written by another recipe.
            return

        def fit(self, model, ckpt_path=None, **kwargs):
            if ckpt_path == "last":
                ckpt_path = last_checkpoint(self.trainer) or ckpt_path
            self.trainer.fit(model, ckpt_path=ckpt_path, **kwargs)

    trainer_defaults = {"plugins": [AtomicCheckpointIO()], "reload_dataloaders_every_n_epochs": 1,
                        "use_distributed_sampler": False}
    program, sys.argv = sys.argv, sys.argv[:1]  # the options are in `args`; LightningCLI warns when argv has some too
    try:
        return LynxCLI(LynxModule, LynxDataModule, args=args, run=run, trainer_defaults=trainer_defaults,
                       save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                       parser_kwargs={"prog": "diffsynth-ext fit --extension lynx"})
    finally:
        sys.argv = program


def last_checkpoint(trainer) -> Optional[str]:
    """The newest ``last*.ckpt`` of the run's root (any version folder) or of a checkpoint callback's folder.

    Lightning resolves ``--ckpt_path last`` only inside the new run's own version folder, which a fresh process has
    just created empty, so it would silently start from scratch.
    """
    from pathlib import Path

    roots = [Path(trainer.default_root_dir)]
    roots += [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
    found = {p for root in roots if root.is_dir() for p in root.glob("**/last*.ckpt")}
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


def main(argv: Optional[list[str]] = None) -> int:
    from .common import run_command, snake_case_flags
    from .host_output import host_output_silenced, wants_quiet

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = wants_quiet(argv)  # --quiet: DiffSynth's loader messages off (LightningCLI itself has no such option)
    argv = snake_case_flags([a for a in argv if a != "--quiet"])
    with host_output_silenced(quiet):
        return run_command(lambda: make_cli(["fit", *argv]) and 0)
