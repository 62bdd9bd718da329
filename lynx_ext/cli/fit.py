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

        def before_fit(self) -> None:  # before any weight loads: data, adapters and embedder must fit
            from ..training.preflight import check_training_inputs

            check_training_inputs(self.model, self.datamodule)

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would silently replace the recipe by the checkpoint's hyper-parameters. The recipe stays
            # the source of truth; `LynxModule.on_load_checkpoint` refuses a checkpoint written by another recipe.
            return

    trainer_defaults = {"plugins": [AtomicCheckpointIO()], "reload_dataloaders_every_n_epochs": 1,
                        "use_distributed_sampler": False}
    return LynxCLI(LynxModule, LynxDataModule, args=args, run=run, trainer_defaults=trainer_defaults,
                   save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                   parser_kwargs={"prog": "diffsynth-ext fit --extension lynx"})


def main(argv: Optional[list[str]] = None) -> int:
    from .common import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: check_ckpt_path(argv) or make_cli(["fit", *argv]) and 0)


def check_ckpt_path(argv: list[str]) -> None:
    """A ``--ckpt_path`` file that is not a training checkpoint is refused before anything loads."""
    from ..training.checkpoint_io import check_checkpoint_file

    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--ckpt_path=") else (
            argv[i + 1] if arg == "--ckpt_path" and i + 1 < len(argv) else None)
        if value and value not in ("last", "best", "hpc", "registry"):
            from pathlib import Path

            check_checkpoint_file(Path(value))
