"""``diffsynth-ext fit --extension lynx --config recipes/....yaml [--key value ...]`` (LightningCLI).

The recipe is validated before any weight loads: an unknown or misspelt key fails, naming the key. The config a
run saves (``<log dir>/config.yaml``) parses again, so ``fit --config <that file>`` repeats the run.
"""
from __future__ import annotations

import sys
import warnings
from typing import Optional


PROG = "diffsynth-ext fit --extension lynx"


def make_cli(args: list[str], run: bool = True):
    from lightning.pytorch.callbacks import ProgressBar
    from lightning.pytorch.cli import LightningCLI

    from ..callbacks.pending_log import PendingStepLog
    from ..callbacks.progress import StepProgressBar
    from ..training.checkpoint_io import AtomicCheckpointIO
    from ..training.datamodule import LynxDataModule
    from ..training.module import LynxModule

    class LynxCLI(LightningCLI):
        def setup_parser(self, *args, **kwargs) -> None:
            super().setup_parser(*args, **kwargs)
            for sub in getattr(self, "_subcommand_parsers", {}).values():  # not "PROG [options] fit": fit is in PROG
                sub.prog = PROG

        def add_arguments_to_parser(self, parser):
            parser.link_arguments("model.seed", "data.seed")
            if not run:  # the `fit` subcommand's own keys, so a saved run config also parses here (cli.config)
                parser.add_argument("--ckpt_path", type=Optional[str], default=None, help="checkpoint to resume")
                parser.add_argument("--weights_only", type=Optional[bool], default=None)

        def before_instantiate_classes(self) -> None:  # "needs a CUDA GPU", before the model or data are built
            from ..training.preflight import check_accelerator

            if self.subcommand:
                check_accelerator(self.config.get(f"{self.subcommand}.trainer.accelerator"))

        def before_fit(self) -> None:  # before any weight loads: the card, data, adapters and embedder must fit
            from ..training.preflight import check_training_inputs, check_training_memory

            check_training_memory(self.model, self.datamodule, self.trainer)
            check_training_inputs(self.model, self.datamodule)

        def _parse_ckpt_path(self) -> None:
            # LightningCLI would silently replace the recipe by the checkpoint's hyper-parameters. The recipe stays
            # the source of truth; `LynxModule.on_load_checkpoint` refuses a checkpoint written by another recipe.
            return

        def fit(self, model, ckpt_path=None, **kwargs):
            if ckpt_path == "last":
                ckpt_path = last_checkpoint(self.trainer) or ckpt_path
            try:
                self.trainer.fit(model, ckpt_path=ckpt_path, **kwargs)
            finally:  # also after a failure: where the run's files are and how to resume it
                say_where_the_run_is(self.trainer)

        def _instantiate_trainer(self, config, callbacks):
            # One bar over the run's steps (not per epoch); not part of the saved config, added again on re-runs.
            given = config.get("callbacks") or []
            listed = (given if isinstance(given, list) else [given]) + list(callbacks)
            if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in listed):
                callbacks = [*callbacks, StepProgressBar()]
            if not any(isinstance(c, PendingStepLog) for c in listed):  # a resumed run's log is as complete as its state
                callbacks = [*callbacks, PendingStepLog()]
            return super()._instantiate_trainer(config, callbacks)

    # Given as a class path, not an instance: the config a run saves must parse again (`fit --config` on it).
    trainer_defaults = {"plugins": [{"class_path": f"{AtomicCheckpointIO.__module__}.AtomicCheckpointIO"}],
                        "reload_dataloaders_every_n_epochs": 1, "use_distributed_sampler": False}
    with warnings.catch_warnings():
        # `args` always comes from our own command line (sys.argv also holds `fit --extension lynx`).
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return LynxCLI(LynxModule, LynxDataModule, args=args, run=run, trainer_defaults=trainer_defaults,
                       save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                       parser_kwargs={"prog": PROG})


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


def say_where_the_run_is(trainer) -> None:
    """Print (first process only) the run's folder, checkpoints, adapter exports, TensorBoard log dir, saved config
    and the commands that repeat and resume it; only paths that exist."""
    from ..training.run_folder import describe_run

    if trainer.is_global_zero:
        try:
            text = describe_run(trainer)
        except Exception as err:  # noqa: BLE001 - never hide the run's own error behind this one
            text = f"(could not list the run's outputs: {type(err).__name__}: {err})"
        if text:
            print(text, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    from .common import run_command, snake_case_flags
    from .host_output import host_output_silenced, wants_quiet

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet = wants_quiet(argv)  # --quiet: DiffSynth's loader messages off (LightningCLI itself has no such option)
    argv = snake_case_flags([a for a in argv if a != "--quiet"])
    with host_output_silenced(quiet):
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
